// The Assistant's rendering rule (contract A), the same as the Python
// renderer's (services/shared/conversation.py `Transcript`):
//
// - a turn's text is the concatenation of its current attempt's deltas in seq
//   order; a seq already applied is ignored;
// - a delta or retry of a HIGHER attempt discards the text shown so far
//   ("attempt 2 started over"), and the turn goes on with that attempt;
// - a delta of a LOWER attempt, or for a turn already complete or failed, is
//   fenced: ignored and counted. A zombie attempt (a worker paused past its
//   heartbeat timeout, then woken) flushes its late deltas after attempt 2's,
//   and they must never reach the text;
// - `complete` carries the activity's result: the text shown becomes exactly
//   that, and the turn records whether what it had built matched it.
//
// No DOM here: the panel renders what this reports.
"use strict";

/** One question and its answer, as far as the stream has told. */
export class Turn {
  constructor(turn) {
    this.turn = turn;
    this.prompt = null; // null until its `turn` event is seen (it may have been truncated away)
    this.questionId = null;
    this.state = "asked"; // asked | streaming | complete | failed
    this.attempt = 0; // the attempt whose text is shown; 0 before any
    this.parts = new Map(); // seq -> text, of that attempt
    this.final = null; // complete.text
    this.rewinds = []; // [{from, to, discarded, why}]
    this.fenced = 0; // deltas and retries of a superseded attempt, or after the turn closed
    this.repeated = 0; // deltas whose seq was already applied
    this.built = null; // on `complete`: the text this renderer had built
    this.matched = null; // on `complete`: whether it equals the result
    this.error = null; // on `failed`: the server's message
  }

  get closed() {
    return this.state === "complete" || this.state === "failed";
  }

  /** The text shown: the result once complete, else the attempt's parts in seq order. */
  get text() {
    if (this.final !== null) return this.final;
    return [...this.parts.keys()].sort((a, b) => a - b).map((seq) => this.parts.get(seq)).join("");
  }
}

export class Transcript {
  #turns = new Map();

  /** The turns in order. */
  get turns() {
    return [...this.#turns.values()].sort((a, b) => a.turn - b.turn);
  }

  #get(n) {
    if (!this.#turns.has(n)) this.#turns.set(n, new Turn(n));
    return this.#turns.get(n);
  }

  /**
   * Apply one event of topic `topic`; returns {turn, change} where change is one of
   * asked, delta, rewind, fenced, repeated, complete, failed, ignored.
   */
  apply(topic, data) {
    const turn = this.#get(data.turn);
    switch (topic) {
      case "turn":
        turn.prompt = data.prompt;
        turn.questionId = data.question_id;
        return { turn, change: "asked" };
      case "delta":
      case "retry":
        return { turn, change: this.#attemptItem(turn, topic, data) };
      case "complete":
        if (turn.closed) return { turn, change: "ignored" }; // the same end again, after a resume
        turn.built = turn.text;
        turn.final = data.text; // the activity's result is the answer, whatever was built
        turn.matched = turn.built === turn.final;
        turn.attempt = Math.max(turn.attempt, data.attempt);
        turn.state = "complete";
        return { turn, change: "complete" };
      case "failed":
        if (turn.closed) return { turn, change: "ignored" };
        turn.error = data.error;
        turn.state = "failed";
        return { turn, change: "failed" };
      default:
        return { turn, change: "ignored" };
    }
  }

  #attemptItem(turn, topic, data) {
    if (turn.closed || data.attempt < turn.attempt) {
      turn.fenced += 1;
      return "fenced";
    }
    let change = "delta";
    if (data.attempt > turn.attempt) {
      // The first attempt seen discards nothing; a later one discards what the earlier built.
      if (turn.attempt > 0) {
        turn.rewinds.push({
          from: turn.attempt, to: data.attempt, discarded: turn.text,
          why: data.why || `attempt ${data.attempt} started`,
        });
        change = "rewind";
      }
      turn.attempt = data.attempt;
      turn.parts = new Map();
    }
    turn.state = "streaming";
    if (topic !== "delta") return change === "rewind" ? change : "ignored";
    if (turn.parts.has(data.seq)) {
      turn.repeated += 1; // applied before (the page resumed): ignored
      return change === "rewind" ? change : "repeated";
    }
    turn.parts.set(data.seq, data.text);
    return change;
  }
}
