/** Types of scripts/npm-test.mjs (plain JavaScript so `npm test` can run it before the build). */
export interface Phase {
  name: string;
  command: string;
  args: string[];
}

export const TIMES_ENV: 'MESH_NPM_TEST_TIMES';

export const PHASE_FAILED_SUMMARY: '0 passed, 1 failed';

export function npmTestPhases(testArgs?: string[]): Phase[];

export function formatPhases(phases: ReadonlyArray<readonly [string, number]>): string;

export function runPhases(
  phases: readonly Phase[],
  options?: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    now?: () => number;
    stdout?: { write(text: string): unknown };
    stderr?: { write(text: string): unknown };
  },
): Promise<number>;
