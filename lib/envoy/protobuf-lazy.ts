/**
 * protobufjs generates five functions for a message type the first time any
 * of them is called (Type#setup): encode, decode, verify, fromObject and
 * toObject, each from source text it builds and compiles. The agent calls
 * three of them for the resources it sends (fromObject, verify, encode) and
 * two for what Envoy sends (decode, toObject); the other functions' source and
 * bytecode stayed in the heap for the life of the process. This makes each of
 * the five generate its own function on its first call, with the same code
 * protobufjs uses (its encoder, decoder, verifier and converter), so the
 * results are the same. A type with a wrapper (google.protobuf.Any) keeps
 * protobufjs's own setup, which wraps fromObject and toObject.
 *
 * Installed once, by importing this module (lib/envoy/protos.ts does).
 */
import protobuf from 'protobufjs';

type Generated = (...args: unknown[]) => unknown;
type Method = 'encode' | 'decode' | 'verify' | 'fromObject' | 'toObject';

const { Type, Writer, Reader, util, encoder, decoder, verifier, converter, wrappers } = protobuf;

/** The resolved type of each field, in field order: what the generated code indexes as types[i]. */
function fieldTypes(type: protobuf.Type): Array<protobuf.Type | protobuf.Enum | null> {
  return type.fieldsArray.map((f) => f.resolve().resolvedType);
}

const generators: Record<Method, (type: protobuf.Type) => Generated> = {
  encode: (type) => encoder(type)({ Writer, types: fieldTypes(type), util }) as Generated,
  decode: (type) => decoder(type)({ Reader, types: fieldTypes(type), util }) as Generated,
  verify: (type) => verifier(type)({ types: fieldTypes(type), util }) as Generated,
  fromObject: (type) => converter.fromObject(type)({ types: fieldTypes(type), util }) as Generated,
  toObject: (type) => converter.toObject(type)({ types: fieldTypes(type), util }) as Generated,
};

const MARK = Symbol.for('vm-mesh.protobuf-lazy');
const proto = Type.prototype as unknown as Record<Method, Generated> & { setup(this: unknown): Record<Method, Generated>; [MARK]?: true };

if (proto[MARK] !== true) {
  proto[MARK] = true;
  for (const method of Object.keys(generators) as Method[]) {
    const generate = generators[method];
    // The first call on a type replaces this prototype method with the type's own generated function.
    proto[method] = function lazySetup(this: Record<Method, Generated> & { fullName: string }, ...args: unknown[]): unknown {
      if ((wrappers as Record<string, unknown>)[this.fullName] !== undefined) {
        // protobufjs's own setup: all five, fromObject and toObject wrapped.
        return proto.setup.call(this)[method].apply(this, args);
      }
      const fn = generate(this as unknown as protobuf.Type);
      this[method] = fn;
      return fn.apply(this, args);
    };
  }
}
