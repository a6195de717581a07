import { parentPort, workerData } from "node:worker_threads";
import { TowerReplica, type TowerBatch } from "./tower-replica.ts";

/** A replica in a worker thread: "gradients" answers with its gradients, "apply" steps its optimiser, "weights" sends them. */
type Message =
  | { type: "gradients"; batch: TowerBatch }
  | { type: "apply"; gradients: Float32Array[]; learningRate: number }
  | { type: "weights" };

const { vocabSize, seed, learningRate } = workerData as { vocabSize: number; seed: number; learningRate: number };
const replica = await TowerReplica.create(vocabSize, seed, learningRate);
parentPort!.on("message", (message: Message) => {
  if (message.type === "gradients") {
    const result = replica.gradients(message.batch);
    parentPort!.postMessage(result, result.gradients.map((g) => g.buffer as ArrayBuffer));
  } else if (message.type === "apply") {
    replica.apply(message.gradients, message.learningRate);
  } else {
    parentPort!.postMessage({ weights: replica.weights(), logitScale: replica.logitScale() });
  }
});
parentPort!.postMessage({ ready: true });
