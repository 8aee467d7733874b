/**
 * A deterministic Markdown answer of a given length, shaped like a long model answer: headings,
 * paragraphs with inline marks, lists, tables, fenced code in several languages, quotes, math.
 */

const SECTIONS: ((i: number) => string)[] = [
  (i) => `## Part ${i}: how the stream is read\n\n`,
  (i) =>
    `The server writes each token as its own **event**, and the browser reads them with a ` +
    `\`ReadableStream\` reader. A chunk may end *anywhere*: inside a line, between CR and LF, or ` +
    `in the middle of a multi-byte character such as "naïve" or 20 °C (step ${i}). ` +
    `See [the standard](https://html.spec.whatwg.org/multipage/server-sent-events.html) for details.\n\n`,
  (i) =>
    `- Split lines on CR, LF and CRLF\n- Keep a partial line until its end arrives\n` +
    `- Decode UTF-8 with \`stream: true\`\n  - nested point ${i}\n- Dispatch on a blank line\n\n`,
  (i) =>
    "```typescript\n" +
    `export function feed${i}(decoder: TextDecoder, chunk: Uint8Array): string[] {\n` +
    "  const text = decoder.decode(chunk, { stream: true });\n" +
    "  const lines: string[] = [];\n" +
    "  for (const line of text.split(/\\r\\n|\\r|\\n/)) {\n" +
    "    if (line.startsWith(':')) continue; // a comment\n" +
    "    lines.push(line);\n" +
    "  }\n" +
    "  return lines;\n" +
    "}\n```\n\n",
  (i) =>
    `| field | meaning | example ${i} |\n|---|---|---|\n| \`id\` | the event's sequence number | \`42\` |\n` +
    `| \`event\` | its type | \`delta\` |\n| \`data\` | its payload, JSON | \`{"text": "Hel"}\` |\n` +
    `| \`retry\` | reconnection delay in ms | \`3000\` |\n\n`,
  (i) =>
    `> A reconnecting client sends \`Last-Event-ID: ${i}\` and the server replays what came ` +
    `after it, so nothing is lost and nothing is shown twice.\n\n`,
  (i) =>
    `The cost of a frame is roughly $O(n_{${i}})$ in the size of the open block, and ` +
    `$$\\sum_{k=1}^{n} t_k \\le n \\cdot \\max_k t_k$$\n\n`,
  (i) =>
    "```python\n" +
    `async def follow_${i}(run, after: int | None = None):\n` +
    '    """Yield every frame after `after`, then follow live."""\n' +
    "    async for frame in run.log.follow(after):\n" +
    "        yield frame\n```\n\n",
  (i) => `1. First, open the stream\n2. Then read until \`done\` (${i})\n3. Finally, close it\n\n`,
];

export function makeAnswer(chars: number): string {
  let out = "# A long answer\n\n";
  for (let i = 0; out.length < chars; i++) {
    out += (SECTIONS[i % SECTIONS.length] as (i: number) => string)(i);
  }
  return out.slice(0, chars);
}

/** Model-like tokens: a word or a piece of one, with its leading whitespace; 1-6 characters. */
export function tokenize(text: string): string[] {
  return text.match(/\s*[^\s]{1,5}|\s+/g) ?? [];
}
