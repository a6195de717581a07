import onnxProto, { type onnx } from "onnx-proto";

// onnx-proto is CommonJS: the runtime namespace comes from its default export.
const { onnx: proto } = onnxProto;


/** Small helpers to write ONNX graphs from TypeScript (IR 8, opset 13), for fixture models. */
export const FLOAT = proto.TensorProto.DataType.FLOAT;
export const INT64 = proto.TensorProto.DataType.INT64;

export function floatTensor(name: string, dims: number[], values: Float32Array): onnx.ITensorProto {
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

export function int64Tensor(name: string, values: number[]): onnx.ITensorProto {
  const data = BigInt64Array.from(values.map(BigInt));
  return { name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(data.buffer) };
}

export function node(opType: string, input: string[], output: string[], attributes: onnx.IAttributeProto[] = []): onnx.INodeProto {
  return { opType, input, output, attribute: attributes, name: `${opType}_${output[0]}` };
}

export function intAttribute(name: string, value: number): onnx.IAttributeProto {
  return { name, type: proto.AttributeProto.AttributeType.INT, i: value };
}

export function intsAttribute(name: string, values: number[]): onnx.IAttributeProto {
  return { name, type: proto.AttributeProto.AttributeType.INTS, ints: values };
}

export function valueInfo(name: string, elemType: number, dims: Array<number | string>): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((dim) => (typeof dim === "number" ? { dimValue: dim } : { dimParam: dim })) },
      },
    },
  };
}

export function encodeModel(graph: onnx.IGraphProto): Uint8Array {
  return proto.ModelProto.encode({
    irVersion: 8,
    producerName: "tessera-fixtures",
    opsetImport: [{ domain: "", version: 13 }],
    graph,
  }).finish();
}

/** Deterministic weights: the same seed gives the same model, so tests can compare runs. */
export function seededWeights(count: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = (((state >>> 0) / 0xffffffff) * 2 - 1) * scale;
  }
  return out;
}

/** A constant of any shape from plain numbers, stored as float32 or int64. */
export function constant(name: string, dims: number[], values: number[], type: "float" | "int64" = "float"): onnx.ITensorProto {
  return type === "float"
    ? floatTensor(name, dims, Float32Array.from(values))
    : { name, dims, dataType: INT64, rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) };
}

/** A graph input or output by element type name. */
export function io(name: string, type: "float" | "int64", dims: Array<number | string>): onnx.IValueInfoProto {
  return valueInfo(name, type === "float" ? FLOAT : INT64, dims);
}
