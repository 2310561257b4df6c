// Serves the oracle functions with the official SDK's node adapter on 127.0.0.1.
// Configuration comes from INNGEST_* variables; the port (0 = any) from ORACLE_PORT.
// Prints `listening <port>` once ready.
import http from "node:http";
import { Inngest, NonRetriableError, RetryAfterError } from "inngest";
import { serve } from "inngest/node";

const inngest = new Inngest({ id: "my-app" });

const hello = inngest.createFunction(
  { id: "hello", triggers: [{ event: "app/hello" }] },
  async ({ event }) => ({ hello: event.data.name }),
);

const steps = inngest.createFunction(
  { id: "steps", triggers: [{ event: "app/steps" }] },
  async ({ step }) => {
    const a = await step.run("first step", () => "A");
    await step.sleep("sleep", "1m");
    const b = await step.run("second step", () => a + "B");
    return { b };
  },
);

const loop = inngest.createFunction(
  { id: "loop", triggers: [{ event: "app/loop" }] },
  async ({ step }) => {
    const sent = [];
    for (let i = 0; i < 3; i++) {
      sent.push(await step.run("send-email", () => i));
    }
    return sent;
  },
);

const parallel = inngest.createFunction(
  { id: "parallel", triggers: [{ event: "app/parallel" }] },
  async ({ step }) =>
    Promise.all([1, 2, 3].map((i) => step.run("send-email", () => i))),
);

const wait = inngest.createFunction(
  { id: "wait", triggers: [{ event: "app/wait" }] },
  async ({ step }) => {
    const got = await step.waitForEvent("wait", {
      event: "test/resume",
      timeout: "10s",
      if: "async.data.id == event.data.id",
    });
    return { got };
  },
);

const fails = inngest.createFunction(
  { id: "fails", retries: 2, triggers: [{ event: "app/fails" }] },
  async ({ step }) => {
    await step.run("flaky", () => {
      throw new Error("broken");
    });
    return "unreachable";
  },
);

const fnThrows = inngest.createFunction(
  { id: "fn-throws", triggers: [{ event: "app/throws" }] },
  async () => {
    throw new Error("broken func");
  },
);

const nonRetriable = inngest.createFunction(
  { id: "non-retriable", triggers: [{ event: "app/nr" }] },
  async () => {
    throw new NonRetriableError("do not retry");
  },
);

const retryAfter = inngest.createFunction(
  { id: "retry-after", triggers: [{ event: "app/ra" }] },
  async () => {
    throw new RetryAfterError("slow down", "30s");
  },
);

const invoker = inngest.createFunction(
  { id: "invoker", triggers: [{ event: "app/invoke" }] },
  async ({ step }) =>
    step.invoke("call-hello", { function: hello, data: { name: "x" }, timeout: "1h" }),
);

const sender = inngest.createFunction(
  { id: "sender", triggers: [{ event: "app/send" }] },
  async ({ step }) =>
    step.sendEvent("send-it", { name: "app/hello", data: { name: "from-step" } }),
);

const configured = inngest.createFunction(
  {
    id: "configured",
    name: "Configured Fn",
    retries: 7,
    triggers: [{ event: "app/configured", if: "event.data.ok == true" }, { cron: "0 * * * *" }],
    idempotency: "event.data.order_id",
    batchEvents: { maxSize: 10, timeout: "5s", key: "event.data.user_id" },
    rateLimit: { limit: 1, period: "1h", key: "event.data.user_id" },
    throttle: { limit: 10, period: "1m", key: "event.data.user_id", burst: 2 },
    concurrency: [
      { limit: 5, key: "event.data.user_id" },
      { limit: 100, scope: "env", key: '"global"' },
    ],
    debounce: { period: "10s", key: "event.data.user_id", timeout: "1m" },
    priority: { run: "event.data.priority" },
    timeouts: { start: "1m", finish: "1h" },
    cancelOn: [
      { event: "app/cancel", timeout: "1d", if: "event.data.user_id == async.data.user_id" },
    ],
    onFailure: async ({ event }) => ({ handled: event.data.function_id }),
  },
  async () => null,
);

const handler = serve({
  client: inngest,
  functions: [
    hello, steps, loop, parallel, wait, fails, fnThrows, nonRetriable, retryAfter, invoker,
    sender, configured,
  ],
});

const server = http.createServer(handler);
// Exit with the parent: the test process holds our stdin open.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

server.listen(Number(process.env.ORACLE_PORT || 0), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
