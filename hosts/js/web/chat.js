// The chat page's view (web/index.html): the transcript, the input, the status lines. Only the DOM is
// touched here; running the app is main.js's. Text is always set as text (never as HTML): an answer
// is whatever a plug-in wrote.

/** The most status lines kept on the page (a chatty plug-in logs thousands). */
export const MAX_STATUS_LINES = 200;
/** The most characters one answer shows while it streams (a chunk is at most 64 KiB; a loop could send many). */
export const MAX_STREAM_CHARS = 1024 * 1024;

/** @typedef {"loading" | "ready" | "running" | "failed"} State */

/** @param {string} id */
function element(id) {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return found;
}

export class ChatView {
  constructor() {
    this.transcript = element("transcript");
    this.form = /** @type {HTMLFormElement} */ (element("ask"));
    this.input = /** @type {HTMLTextAreaElement} */ (element("input"));
    this.send = /** @type {HTMLButtonElement} */ (element("send"));
    this.newSession = /** @type {HTMLButtonElement} */ (element("new-session"));
    this.statusList = element("status");
    this.stateLabel = element("state-label");
  }

  /** Show the app: its name in the title and heading. @param {string} name @param {string} description */
  showApp(name, description) {
    document.title = `${name} · Chainsocket`;
    element("app-name").textContent = name;
    element("app-description").textContent = description;
  }

  /**
   * The page's state, on <body data-state> (tests and styles read it): the input is open only when ready.
   * @param {State} state
   */
  setState(state) {
    document.body.dataset.state = state;
    this.stateLabel.textContent = state;
    const open = state === "ready";
    this.input.disabled = !open;
    this.send.disabled = !open;
    this.newSession.disabled = state === "running" || state === "loading";
    this.input.placeholder = state === "failed" ? "The app could not start (see the status below)"
      : state === "loading" ? "Loading the app…" : "Ask something (Enter sends, Shift+Enter for a new line)";
    if (open) this.input.focus();
  }

  /**
   * A status line (progress, a plug-in's log, a warning). @param {string} text
   * @param {"info" | "warn" | "error"} [level]
   */
  status(text, level = "info") {
    const line = document.createElement("li");
    line.className = level;
    line.textContent = `${new Date().toISOString().slice(11, 19)} ${text}`;
    this.statusList.append(line);
    while (this.statusList.childElementCount > MAX_STATUS_LINES) this.statusList.firstElementChild?.remove();
    line.scrollIntoView?.({ block: "nearest" });
  }

  /** @param {string} who @param {string} role @param {string} text */
  #message(who, role, text) {
    const box = document.createElement("article");
    box.className = `message ${role}`;
    const label = document.createElement("span");
    label.className = "who";
    label.textContent = who;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    box.append(label, body);
    this.transcript.append(box);
    box.scrollIntoView?.({ block: "end" });
    return box;
  }

  /** @param {string} text */
  userMessage(text) {
    this.#message("you", "user", text);
  }

  /** An error of the page itself (the app did not load), shown in the transcript. @param {string} text */
  errorMessage(text) {
    this.#message("error", "assistant error", text).dataset.done = "true";
  }

  /**
   * An answer that fills as chunks arrive, then ends with the output, or with an error.
   * @param {string} who
   */
  answer(who) {
    const box = this.#message(who, "assistant streaming", "");
    const body = /** @type {HTMLElement} */ (box.querySelector(".text"));
    let streamed = 0;
    return {
      /** @param {string} text */
      chunk: (text) => {
        if (streamed >= MAX_STREAM_CHARS) return;
        const kept = text.slice(0, MAX_STREAM_CHARS - streamed);
        streamed += kept.length;
        body.append(kept);
        box.scrollIntoView?.({ block: "end" });
      },
      /** @param {string} output @param {string} finishReason @param {string} meta */
      finish: (output, finishReason, meta) => {
        box.classList.remove("streaming");
        body.textContent = output;
        if (finishReason === "error") box.classList.add("error");
        const line = document.createElement("span");
        line.className = "meta";
        line.textContent = meta;
        box.append(line);
        box.dataset.finishReason = finishReason;
        box.dataset.done = "true";
      },
      /** @param {string} message */
      fail: (message) => {
        box.classList.remove("streaming");
        box.classList.add("error");
        body.textContent = message;
        box.dataset.finishReason = "failed";
        box.dataset.done = "true";
      },
    };
  }

  /**
   * Call `onSend` with each message the user sends (Enter or the button; Shift+Enter is a new line),
   * and `onNewSession` when asked for a new conversation.
   * @param {(text: string) => void} onSend @param {() => void} onNewSession
   */
  listen(onSend, onNewSession) {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.input.value.trim();
      if (!text || this.input.disabled) return;
      this.input.value = "";
      onSend(text);
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.newSession.addEventListener("click", () => onNewSession());
  }

  /** Start the transcript over (a new conversation). */
  clear() {
    this.transcript.replaceChildren();
  }
}
