// One read of a Durable Stream with the npm client (@durable-streams/client),
// for tests/e2e/test_edge.py:
//
//   node read.mjs <stream url> <offset> <live: long-poll|sse|false> [stop after N messages]
//
// Prints one line per message ({"message": ...}), then {"offset": ..., "closed": ...}:
// the offset to resume from (a batch boundary) and whether the stream closed.
import { stream } from "@durable-streams/client"

const [url, offset, mode, stopAfter] = process.argv.slice(2)
const live = mode === "false" ? false : mode
const limit = stopAfter ? Number(stopAfter) : Infinity

const res = await stream({ url, offset, live, json: true })
let count = 0
let last = offset
let closed = false
let done = false
await new Promise((resolve, reject) => {
  res.subscribeJson(async (batch) => {
    if (done) return
    for (const item of batch.items) console.log(JSON.stringify({ message: item }))
    count += batch.items.length
    last = batch.offset
    closed = batch.streamClosed
    if (closed || count >= limit || (live === false && batch.upToDate)) {
      done = true
      resolve()
    }
  })
  res.closed.then(resolve, reject)
})
console.log(JSON.stringify({ offset: last, closed }))
res.cancel()
process.exit(0)
