import onnxProto from "onnx-proto";

// onnx-proto is CommonJS: its namespace comes through the default export.
const { onnx } = onnxProto;

export const FLOAT = onnx.TensorProto.DataType.FLOAT;
export const INT64 = onnx.TensorProto.DataType.INT64;

type Dim = string | number;

/**
 * A small builder for inference graphs (IR 8, opset 13): weights go in as
 * little-endian raw data, names are generated so callers only wire outputs.
 */
export class OnnxGraph {
  private readonly nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  private readonly initializers: ReturnType<typeof onnx.TensorProto.create>[] = [];
  private readonly inputs: ReturnType<typeof onnx.ValueInfoProto.create>[] = [];
  private readonly outputs: ReturnType<typeof onnx.ValueInfoProto.create>[] = [];
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
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`${name}: ${data.length} values for dims ${dims}`);
    this.initializers.push(
      onnx.TensorProto.create({ name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }),
    );
    return name;
  }

  int64s(values: number[], hint = "shape"): string {
    const name = `${hint}_${this.counter++}`;
    const data = BigInt64Array.from(values.map(BigInt));
    this.initializers.push(
      onnx.TensorProto.create({ name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(data.buffer) }),
    );
    return name;
  }

  /** Adds one node; `output` names the result (for graph outputs), otherwise one is made up. */
  op(opType: string, inputs: string[], attributes: Record<string, number | number[] | string> = {}, output?: string): string {
    const result = output ?? `${opType.toLowerCase()}_${this.counter++}`;
    this.nodes.push(
      onnx.NodeProto.create({
        opType,
        input: inputs,
        output: [result],
        name: `${opType}_${this.counter++}`,
        attribute: Object.entries(attributes).map(([name, value]) =>
          typeof value === "string"
            ? onnx.AttributeProto.create({ name, s: new TextEncoder().encode(value), type: onnx.AttributeProto.AttributeType.STRING })
            : Array.isArray(value)
            ? onnx.AttributeProto.create({ name, ints: value, type: onnx.AttributeProto.AttributeType.INTS })
            : Number.isInteger(value)
              ? onnx.AttributeProto.create({ name, i: value, type: onnx.AttributeProto.AttributeType.INT })
              : onnx.AttributeProto.create({ name, f: value, type: onnx.AttributeProto.AttributeType.FLOAT }),
        ),
      }),
    );
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
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: "tessera-training",
      opsetImport: [{ domain: "", version: 13 }],
      graph: onnx.GraphProto.create({
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      }),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, elemType: number, dims: Dim[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((dim) => (typeof dim === "string" ? { dimParam: dim } : { dimValue: dim })) },
      },
    },
  });
}
