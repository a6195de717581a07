import type { ExecutionResult } from "graphql";
import { Repeater, type Plugin } from "graphql-yoga";
import { TesseraError } from "../../core/errors.ts";
import type { GatewayContext } from "../context.ts";
import { toGraphQLError } from "../graphql-errors.ts";
import type { OpenSubscriptions, SubscriptionSlot } from "../open-subscriptions.ts";

function isAsyncIterable(value: unknown): value is AsyncIterable<ExecutionResult> {
  return typeof (value as AsyncIterable<unknown> | null)?.[Symbol.asyncIterator] === "function";
}

/**
 * Every subscription, over SSE or graphql-ws, takes a place of its project's
 * (MAX_SUBSCRIPTIONS_PER_KEY) before it starts and gives it back when it ends;
 * past the cap it gets QUOTA_EXCEEDED. A subscription whose key is revoked ends
 * with UNAUTHENTICATED (see OpenSubscriptions). Keyless subscriptions never
 * reach here: useProjectAuth, registered before, refuses them.
 */
export function useSubscriptionLimits(open: OpenSubscriptions): Plugin<GatewayContext> {
  return {
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      const { project, apiKeyHash } = args.contextValue as GatewayContext;
      if (!project || !apiKeyHash) return;
      setSubscribeFn(async (subscribeArgs) => {
        let slot: SubscriptionSlot;
        try {
          slot = await open.open(project.id, apiKeyHash);
        } catch (error) {
          if (error instanceof TesseraError) return { errors: [toGraphQLError(error)] };
          throw error;
        }
        let result: unknown;
        try {
          result = await subscribeFn(subscribeArgs);
        } catch (error) {
          slot.close();
          throw error;
        }
        if (!isAsyncIterable(result)) {
          slot.close(); // refused before it started (NOT_FOUND and the like)
          return result as ExecutionResult;
        }
        return endable(result, slot);
      });
    },
  };
}

/** The subscription's results, until it ends by itself, the client leaves, or the slot is ended (a revoked key). */
function endable(source: AsyncIterable<ExecutionResult>, slot: SubscriptionSlot): AsyncIterableIterator<ExecutionResult> {
  return new Repeater<ExecutionResult>(async (push, stop) => {
    const iterator = source[Symbol.asyncIterator]();
    const stopped = stop.then(() => "stopped" as const);
    slot.onEnd((error) => {
      void push({ errors: [toGraphQLError(error)] });
      stop();
    });
    try {
      while (true) {
        const next = await Promise.race([iterator.next(), stopped]);
        if (next === "stopped" || next.done) return;
        await push(next.value);
      }
    } catch (error) {
      stop(error);
    } finally {
      stop();
      slot.close();
      await iterator.return?.();
    }
  });
}
