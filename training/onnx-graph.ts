import onnxProto, { type onnx as OnnxTypes } from "onnx-proto";

// onnx-proto is CommonJS: its namespace comes through the default export.
const { onnx } = onnxProto;

/**
 * Writing ONNX graphs from TypeScript (IR 8, opset 13), the one way the code
 * base does it: training exports its towers and projectors with OnnxGraph,
 * the test fixtures write exports whose tensor names are fixed (as Hugging
 * Face exports name them) with the functions below it builds on.
 */

export const FLOAT = onnx.TensorProto.DataType.FLOAT;
export const INT64 = onnx.TensorProto.DataType.INT64;

type Dim = string | number;
/** A node attribute: a whole number is an INT, a list INTS, a string STRING, anything else a FLOAT. */
export type AttributeValue = number | number[] | string;

/** Float weights as little-endian raw data. */
export function floatTensor(name: string, dims: number[], values: Float32Array | number[]): OnnxTypes.ITensorProto {
  const data = values instanceof Float32Array ? values : Float32Array.from(values);
  if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`${name}: ${data.length} values for dims ${dims}`);
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** A one-dimensional int64 constant: shapes, axes. */
export function int64Tensor(name: string, values: number[]): OnnxTypes.ITensorProto {
  return int64s(name, [values.length], values);
}

/** A constant of any shape from plain numbers, stored as float32 or int64. */
export function constant(name: string, dims: number[], values: number[], type: "float" | "int64" = "float"): OnnxTypes.ITensorProto {
  return type === "float" ? floatTensor(name, dims, values) : int64s(name, dims, values);
}

function int64s(name: string, dims: number[], values: number[]): OnnxTypes.ITensorProto {
  return { name, dims, dataType: INT64, rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) };
}

function attributes(values: Record<string, AttributeValue>): OnnxTypes.IAttributeProto[] {
  const { AttributeType } = onnx.AttributeProto;
  return Object.entries(values).map(([name, value]) => {
    if (typeof value === "string") return { name, s: new TextEncoder().encode(value), type: AttributeType.STRING };
    if (Array.isArray(value)) return { name, ints: value, type: AttributeType.INTS };
    return Number.isInteger(value) ? { name, i: value, type: AttributeType.INT } : { name, f: value, type: AttributeType.FLOAT };
  });
}

/** One node with fixed output names, named after its first output. */
export function node(opType: string, input: string[], output: string[], attributeValues: Record<string, AttributeValue> = {}): OnnxTypes.INodeProto {
  return { opType, input, output, attribute: attributes(attributeValues), name: `${opType}_${output[0]}` };
}

/** A graph input or output; string dims are symbolic (`batch_size`). */
export function valueInfo(name: string, elemType: number, dims: Dim[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((dim) => (typeof dim === "string" ? { dimParam: dim } : { dimValue: dim })) },
      },
    },
  };
}

/** A graph input or output by element type name. */
export function io(name: string, type: "float" | "int64", dims: Dim[]): OnnxTypes.IValueInfoProto {
  return valueInfo(name, type === "float" ? FLOAT : INT64, dims);
}

export function encodeModel(graph: OnnxTypes.IGraphProto, producerName = "tessera-training"): Uint8Array {
  return onnx.ModelProto.encode({ irVersion: 8, producerName, opsetImport: [{ domain: "", version: 13 }], graph }).finish();
}

/**
 * A builder for inference graphs whose inner names do not matter: names are
 * generated, so callers only wire outputs.
 */
export class OnnxGraph {
  private readonly nodes: OnnxTypes.INodeProto[] = [];
  private readonly initializers: OnnxTypes.ITensorProto[] = [];
  private readonly inputs: OnnxTypes.IValueInfoProto[] = [];
  private readonly outputs: OnnxTypes.IValueInfoProto[] = [];
  private counter = 0;

  constructor(private readonly name: string) {}

  input(name: string, elemType: number, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, elemType: number, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  floats(dims: number[], values: Float32Array | number[], hint = "w"): string {
    const name = `${hint}_${this.counter++}`;
    this.initializers.push(floatTensor(name, dims, values));
    return name;
  }

  int64s(values: number[], hint = "shape"): string {
    const name = `${hint}_${this.counter++}`;
    this.initializers.push(int64Tensor(name, values));
    return name;
  }

  /** Adds one node; `output` names the result (for graph outputs), otherwise one is made up. */
  op(opType: string, inputs: string[], attributeValues: Record<string, AttributeValue> = {}, output?: string): string {
    const result = output ?? `${opType.toLowerCase()}_${this.counter++}`;
    this.nodes.push({
      opType,
      input: inputs,
      output: [result],
      name: `${opType}_${this.counter++}`,
      attribute: attributes(attributeValues),
    });
    return result;
  }

  /** x @ w + b, with w stored [in, out] as tfjs keeps it. */
  dense(x: string, weight: Float32Array, bias: Float32Array, inSize: number, outSize: number): string {
    return this.op("Add", [this.op("MatMul", [x, this.floats([inSize, outSize], weight)]), this.floats([outSize], bias, "b")]);
  }

  /** Divides by the L2 norm of the last axis, as CLIP's exported embeddings are. */
  l2Normalize(x: string, output: string): string {
    const norm = this.op("ReduceL2", [x], { axes: [-1], keepdims: 1 });
    return this.op("Div", [x, this.op("Max", [norm, this.floats([1], [1e-12], "eps")])], {}, output);
  }

  encode(): Uint8Array {
    return encodeModel({ name: this.name, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs });
  }
}
