/** Types of scripts/npm-test.mjs (plain JavaScript so `npm test` can run it before the build). */
export interface Phase {
  name: string;
  command: string;
  args: string[];
}

export const TIMES_ENV: 'MESH_NPM_TEST_TIMES';

export function npmTestPhases(testArgs?: string[]): Phase[];

export function formatPhases(phases: ReadonlyArray<readonly [string, number]>): string;

export function runPhases(
  phases: readonly Phase[],
  options?: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    now?: () => number;
    stderr?: { write(text: string): unknown };
  },
): Promise<number>;
