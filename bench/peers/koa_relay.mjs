// The tutorial's design, as a benchmark peer: Koa, a PassThrough stream as the body, and one
// `data: ${content}\n\n` written per chunk of the openai package's stream, then `data: [DONE]`.
//
//   node koa_relay.mjs --port P        (OPENAI_BASE_URL points at the fake upstream)
//
// GET /chat?message=..&model=.. streams the answer; GET /health answers "ok". Nothing else:
// it is written the way the tutorials show it, not tuned, so that it is a fair reference.
import { PassThrough } from "node:stream";
import Koa from "koa";
import OpenAI from "openai";

const portIndex = process.argv.indexOf("--port");
const port = portIndex > 0 ? Number(process.argv[portIndex + 1]) : 8300;
const client = new OpenAI({
  baseURL: process.env.OPENAI_BASE_URL,
  apiKey: process.env.OPENAI_API_KEY || "sk-bench",
});

const app = new Koa();

app.use(async (ctx) => {
  if (ctx.path === "/health") {
    ctx.body = "ok";
    return;
  }
  if (ctx.path !== "/chat") {
    ctx.status = 404;
    return;
  }
  const message = String(ctx.query.message || "hello");
  const model = String(ctx.query.model || "fake-tokens-20");
  ctx.req.socket.setTimeout(0);
  ctx.req.socket.setNoDelay(true);
  ctx.req.socket.setKeepAlive(true);
  ctx.set({
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    Connection: "keep-alive",
  });
  const stream = new PassThrough();
  ctx.status = 200;
  ctx.body = stream;

  const controller = new AbortController();
  ctx.req.on("close", () => controller.abort());
  (async () => {
    try {
      const completion = await client.chat.completions.create(
        { model, messages: [{ role: "user", content: message }], stream: true },
        { signal: controller.signal },
      );
      for await (const chunk of completion) {
        const content = chunk.choices[0]?.delta?.content || "";
        if (content) stream.write(`data: ${content}\n\n`);
      }
      stream.write("data: [DONE]\n\n");
    } catch (err) {
      if (!controller.signal.aborted) {
        stream.write(`event: error\ndata: ${JSON.stringify(String(err))}\n\n`);
      }
    } finally {
      stream.end();
    }
  })();
});

const server = app.listen(port, "127.0.0.1", () => {
  console.log(`koa relay on http://127.0.0.1:${port}`);
});
server.keepAliveTimeout = 5000;
process.on("SIGTERM", () => {
  server.close();
  process.exit(0);
});
