/* self_ask.c - Self-ask with search (Press et al. 2022) as a Chainsocket agent, in the manner of
 * LangChain's SelfAskWithSearch: the model writes "Follow up:" questions into a growing scratchpad,
 * a search tool answers each as an "Intermediate answer:", until "So the final answer is:". */
#include "chainsocket.h"
#include "parse.h"
#include "prompt.h"
#include "settings.h"

#define MAX_SCRATCHPAD (64 * 1024) /* bytes; stop with an error rather than grow without limit */
#define MAX_OBSERVATION 4000       /* bytes of one tool answer kept in the scratchpad */
#define MAX_CORRECTIONS 2          /* malformed outputs answered with a format reminder */
#define MAX_EMPTY 2                /* empty replies in a row before giving up (the same prompt again
                                      would only get the same nothing, and reminders fill the context) */
#define QUOTE_BYTES 300            /* bytes of a bad output quoted in an error */
#define LOG_BYTES 300              /* bytes of a question/answer shown in a log line */

static const char STOP[] = "\nIntermediate answer:";
static const char CORRECTION[] =
    "(Format reminder: write \"Follow up: <question>\" to ask a follow up question, or "
    "\"So the final answer is: <answer>\" to answer.)\n";

static void put(cs_jw *w, const char *s) { cs_jw_append(w, s, cs_strlen(s)); }
static void put_view(cs_jw *w, text_view t) { cs_jw_append(w, t.p, t.n); }

static void put_int(cs_jw *w, int64_t v) {
    char digits[24];
    size_t n = 0;
    do digits[n++] = (char)('0' + v % 10); while ((v /= 10) && n < sizeof digits);
    while (n) cs_jw_append(w, &digits[--n], 1);
}

/* At most max bytes of t (whole UTF-8 characters), with "…" when cut. */
static void put_clipped(cs_jw *w, text_view t, size_t max) {
    size_t n = text_utf8_cut(t, max);
    cs_jw_append(w, t.p, n);
    if (n < t.n) put(w, "\xe2\x80\xa6");
}

static cs_status answer(cs_jw *out, const char *finish_reason, const char *text, size_t len) {
    cs_jw_object_begin(out);
    cs_jw_key(out, "output");
    cs_jw_string_n(out, text, len);
    cs_jw_key(out, "finish_reason");
    cs_jw_string(out, finish_reason);
    cs_jw_object_end(out);
    return cs_jw_ok(out) ? CS_OK : cs_error("out of memory writing the answer", NULL);
}

/* "step 2/8: follow up: ..." at info level. */
static void log_step(int64_t step, int64_t max_steps, const char *what, text_view detail) {
    cs_jw line;
    cs_jw_init(&line);
    put(&line, "step ");
    put_int(&line, step);
    put(&line, "/");
    put_int(&line, max_steps);
    put(&line, ": ");
    put(&line, what);
    put_clipped(&line, detail, LOG_BYTES);
    if (cs_jw_ok(&line)) cs_log_info(line.data);
    cs_jw_free(&line);
}

/* The tool's answer as one line of at most MAX_OBSERVATION bytes; a failure becomes "Error: ..." so
 * the model can recover (rephrase, or answer from what it has). */
static void ask_tool(const char *tool, const char *question, cs_jw *observation) {
    cs_tool_response r;
    cs_jw raw;
    cs_jw_init(&raw);
    cs_status st = cs_call_tool(tool, question, &r);
    if (st == CS_OK) {
        if (r.is_error) put(&raw, "Error: ");
        cs_jw_append(&raw, r.output, r.output_len);
        cs_tool_response_free(&r);
    } else {
        put(&raw, "Error: tool `");
        put(&raw, tool);
        put(&raw, "` failed (");
        put(&raw, cs_last_error()->code);
        put(&raw, "): ");
        put(&raw, cs_errmsg());
    }
    /* Collapse whitespace runs that hold a line break, so the scratchpad keeps its line format. */
    text_view t = text_trim(text_of(raw.data ? raw.data : "", raw.len));
    cs_jw flat;
    cs_jw_init(&flat);
    for (size_t i = 0; i < t.n;) {
        size_t j = i;
        bool newline = false;
        while (j < t.n && (t.p[j] == ' ' || t.p[j] == '\t' || t.p[j] == '\r' || t.p[j] == '\n'))
            newline |= t.p[j] == '\n' || t.p[j] == '\r', j++;
        if (j > i) {
            if (newline) put(&flat, " ");
            else cs_jw_append(&flat, t.p + i, j - i);
            i = j;
        } else {
            cs_jw_append(&flat, t.p + i, 1);
            i++;
        }
    }
    if (!flat.len) put(&flat, "(no result)");
    put_clipped(observation, text_of(flat.data ? flat.data : "", flat.len), MAX_OBSERVATION);
    cs_jw_free(&flat);
    cs_jw_free(&raw);
}

/* What one run keeps besides the scratchpad: the latest follow-up and its answer, for a partial
 * answer when the step limit is hit. */
typedef struct {
    cs_jw question, observation;
    int corrections, empty; /* format reminders given; empty replies in a row */
} progress;

static cs_status stop_max_steps(cs_jw *out, const settings *s, const progress *p) {
    cs_jw msg;
    cs_jw_init(&msg);
    put(&msg, "No final answer after ");
    put_int(&msg, s->max_steps);
    put(&msg, " steps (config `max_steps`).");
    if (p->question.len) {
        put(&msg, " Last follow up: ");
        cs_jw_append(&msg, p->question.data, p->question.len);
        put(&msg, " Intermediate answer: ");
        cs_jw_append(&msg, p->observation.data, p->observation.len);
    }
    cs_status st = cs_jw_ok(&msg) ? answer(out, "max_steps", msg.data, msg.len) : cs_error("out of memory", NULL);
    cs_jw_free(&msg);
    return st;
}

static cs_status stop_error(cs_jw *out, cs_jw *msg) {
    cs_log_warn(msg->data ? msg->data : "error");
    cs_status st = cs_jw_ok(msg) ? answer(out, "error", msg->data, msg->len) : cs_error("out of memory", NULL);
    cs_jw_free(msg);
    return st;
}

/* One model turn: the continuation of the scratchpad, or false with an error message in msg. */
static bool continue_pad(const settings *s, const cs_jw *pad, cs_llm_response *r, cs_jw *msg) {
    cs_message m = {.role = "user", .content = pad->data};
    const char *stop[] = {STOP};
    cs_llm_request req = {.name = s->llm, .messages = &m, .n_messages = 1, .stop = stop, .n_stop = 1,
                          .has_max_tokens = s->has_max_tokens, .max_tokens = s->max_tokens,
                          .has_temperature = s->has_temperature, .temperature = s->temperature};
    cs_status st = cs_call_llm(&req, r);
    if (st == CS_OK && !cs_streq(r->finish_reason, "error")) return true;
    put(msg, "llm `");
    put(msg, s->llm);
    put(msg, "` failed: ");
    if (st != CS_OK) {
        put(msg, cs_last_error()->code);
        put(msg, ": ");
        put(msg, cs_errmsg());
    } else {
        put(msg, r->error ? r->error : "it answered finish_reason error without a reason");
        cs_llm_response_free(r);
    }
    return false;
}

/* Asks the llm to continue the scratchpad plus `prefix` with one of `options` (llm_input `choices`,
 * docs/abi.md): the index of the one it chose, or -1 when the call failed or it answered anything
 * else (an llm that ignores `choices` answers free text). */
static int choose(const settings *s, const cs_jw *pad, text_view prefix, const text_view *options, int n) {
    cs_jw req;
    cs_jw_init(&req);
    cs_jw_object_begin(&req);
    cs_jw_key(&req, "name");
    cs_jw_string(&req, s->llm);
    cs_jw_key(&req, "messages");
    cs_jw_array_begin(&req);
    cs_jw_object_begin(&req);
    cs_jw_key(&req, "role");
    cs_jw_string(&req, "user");
    cs_jw_key(&req, "content");
    cs_jw prompt;
    cs_jw_init(&prompt);
    cs_jw_append(&prompt, pad->data, pad->len);
    put_view(&prompt, prefix);
    cs_jw_string_n(&req, prompt.data ? prompt.data : "", prompt.len);
    cs_jw_free(&prompt);
    cs_jw_object_end(&req);
    cs_jw_array_end(&req);
    cs_jw_key(&req, "choices");
    cs_jw_array_begin(&req);
    for (int i = 0; i < n; i++) cs_jw_string_n(&req, options[i].p, options[i].n);
    cs_jw_array_end(&req);
    cs_jw_key(&req, "stop");
    cs_jw_array_begin(&req);
    cs_jw_string(&req, "\n");
    cs_jw_array_end(&req);
    if (s->has_temperature) {
        cs_jw_key(&req, "temperature");
        cs_jw_double(&req, s->temperature);
    }
    cs_jw_object_end(&req);
    int chosen = -1;
    cs_buf raw = {0};
    if (cs_jw_ok(&req) && cs_host_call("call_llm", req.data, req.len, &raw) == CS_OK) {
        cs_json_error err;
        cs_json_doc *doc = cs_json_parse(raw.data, raw.len, &err);
        const cs_json *root = doc ? cs_json_root(doc) : NULL;
        const cs_json *c = root ? cs_json_get(root, "content") : NULL;
        text_view got = cs_json_is(c, CS_JSON_STRING) ? text_trim(text_of(c->str, c->len)) : text_of("", 0);
        for (int i = 0; i < n && chosen < 0; i++) {
            text_view option = text_trim(options[i]);
            if (got.n && got.n == option.n && cs_memcmp(got.p, option.p, got.n) == 0) chosen = i;
        }
        if (doc) cs_json_doc_free(doc);
    }
    cs_buf_free(&raw);
    cs_jw_free(&req);
    return chosen;
}

/* The final answer of a question that offers alternatives (config `choices`): the scratchpad through
 * "So the final answer is:" goes back to the llm with the question's two names as `choices`, so the
 * answer is one of them, spelt as there. Otherwise the model's own answer stands. */
static text_view choose_final(const settings *s, const cs_jw *pad, const cs_llm_response *r, text_view a,
                              text_view b, text_view fallback) {
    text_view content = text_of(r->content, r->content_len);
    long at = text_find_ci(content, 0, "so the final answer is");
    if (at < 0) return fallback;
    size_t end = (size_t)at + 22;
    while (end < content.n && content.p[end] == ' ') end++;
    if (end < content.n && content.p[end] == ':') end++;
    cs_jw options;
    cs_jw_init(&options);
    put(&options, " ");
    put_view(&options, a);
    put(&options, " ");
    put_view(&options, b);
    text_view chosen = fallback;
    if (cs_jw_ok(&options)) {
        const text_view views[2] = {text_of(options.data, a.n + 1), text_of(options.data + a.n + 1, b.n + 1)};
        int i = choose(s, pad, text_of(content.p, end), views, 2);
        if (i >= 0) chosen = i == 0 ? a : b; /* views into the question, which outlives options */
    }
    cs_jw_free(&options);
    return chosen;
}

/* The operands of a calculation (config `calculator` with `choices`): a small model copies a number
 * from lines back less reliably than it knows which fact comes first, so "X op Y" is chosen among the
 * ordered pairs of numbers the tools answered (with the operator the model wrote). The chosen text
 * goes into `chosen` (prefix through "Calculate" and " X op Y"); false leaves the model's own. */
static bool choose_operands(const settings *s, const cs_jw *pad, const cs_llm_response *r, text_view expression,
                            cs_jw *chosen) {
    char op;
    text_view seen[MAX_OPERANDS];
    size_t n = operands_seen(text_of(pad->data ? pad->data : "", pad->len), seen);
    if (!parse_binary(expression, &op) || n < 2) return false;
    text_view prefix = text_trim_end(text_of(r->content, (size_t)(expression.p - r->content)));
    cs_jw all;
    cs_jw_init(&all);
    size_t starts[MAX_OPERANDS * (MAX_OPERANDS - 1) + 1];
    int count = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            if (i == j) continue;
            starts[count++] = all.len;
            put(&all, " ");
            put_view(&all, seen[i]);
            const char mid[4] = {' ', op, ' ', 0};
            put(&all, mid);
            put_view(&all, seen[j]);
        }
    starts[count] = all.len;
    bool ok = false;
    if (cs_jw_ok(&all)) {
        text_view options[MAX_OPERANDS * (MAX_OPERANDS - 1)];
        for (int i = 0; i < count; i++) options[i] = text_of(all.data + starts[i], starts[i + 1] - starts[i]);
        int i = choose(s, pad, prefix, options, count);
        if (i >= 0) {
            put_view(chosen, prefix);
            put_view(chosen, options[i]);
            ok = cs_jw_ok(chosen);
        }
    }
    cs_jw_free(&all);
    return ok;
}

static cs_status run(const settings *s, text_view question, cs_jw *out) {
    cs_jw pad, msg;
    progress p = {.corrections = 0, .empty = 0};
    cs_jw_init(&pad);
    cs_jw_init(&msg);
    cs_jw_init(&p.question);
    cs_jw_init(&p.observation);
    if (s->prompt.len) prompt_begin(&pad, s->prompt.data, s->prompt.len, question.p, question.n);
    else prompt_begin(&pad, SELF_ASK_FEW_SHOT, cs_strlen(SELF_ASK_FEW_SHOT), question.p, question.n);

    cs_status st = CS_OK;
    bool done = false;
    for (int64_t step = 1; step <= s->max_steps && !done; step++) {
        if (!cs_jw_ok(&pad) || pad.len > MAX_SCRATCHPAD) {
            put(&msg, "the scratchpad grew past 64 KiB after ");
            put_int(&msg, step - 1);
            put(&msg, " steps; ask a narrower question or use a tool with shorter answers");
            st = stop_error(out, &msg);
            done = true;
            break;
        }
        cs_llm_response r;
        if (!continue_pad(s, &pad, &r, &msg)) {
            st = stop_error(out, &msg);
            done = true;
            break;
        }
        parsed_step parsed = parse_step(text_of(r.content, r.content_len));
        bool empty = text_trim(text_of(r.content, r.content_len)).n == 0;
        p.empty = empty ? p.empty + 1 : 0;
        text_view a, b;
        if (parsed.kind == STEP_FINAL) {
            text_view final = parsed.text;
            if (s->choices && parse_choices(question, &a, &b)) final = choose_final(s, &pad, &r, a, b, final);
            log_step(step, s->max_steps, "final answer: ", final);
            st = answer(out, "final_answer", final.p, final.n);
            done = true;
        } else if (empty && p.empty >= MAX_EMPTY) {
            put(&msg, "the llm `");
            put(&msg, s->llm);
            put(&msg, "` gave an empty reply ");
            put_int(&msg, p.empty);
            put(&msg, " times in a row (finish_reason ");
            put(&msg, r.finish_reason ? r.finish_reason : "?");
            put(&msg, "), so self-ask stopped before the scratchpad outgrew its context; ");
            put(&msg, cs_streq(r.finish_reason, "length")
                          ? "raise the agent's config `max_tokens`, or use a model that follows the self-ask format"
                          : "use a model that follows the self-ask format, or a prompt with examples it can follow");
            st = stop_error(out, &msg);
            done = true;
        } else if (parsed.kind == STEP_FOLLOW_UP) {
            text_view expression;
            bool calculation = s->calculator && parse_calculation(parsed.text, &expression);
            cs_jw written; /* what the model wrote, or with its operands chosen */
            cs_jw_init(&written);
            if (!(calculation && s->choices && choose_operands(s, &pad, &r, expression, &written))) {
                written.len = 0;
                cs_jw_append(&written, r.content, parsed.keep);
            }
            cs_jw_append(&pad, written.data, written.len);
            parsed_step kept = parse_step(text_of(written.data ? written.data : "", written.len));
            log_step(step, s->max_steps, "follow up: ", kept.text);
            p.question.len = p.observation.len = 0;
            put_view(&p.question, kept.text);
            cs_jw_free(&written);
            if (calculation && parse_calculation(text_of(p.question.data, p.question.len), &expression)) {
                cs_jw expr;
                cs_jw_init(&expr);
                put_view(&expr, expression);
                ask_tool(s->calculator, expr.data ? expr.data : "", &p.observation);
                cs_jw_free(&expr);
            } else {
                ask_tool(s->tool, p.question.data ? p.question.data : "", &p.observation);
            }
            log_step(step, s->max_steps, "intermediate answer: ",
                     text_of(p.observation.data ? p.observation.data : "", p.observation.len));
            put(&pad, "\nIntermediate answer: ");
            cs_jw_append(&pad, p.observation.data, p.observation.len);
            put(&pad, "\n");
        } else if (p.corrections < MAX_CORRECTIONS) {
            p.corrections++;
            text_view bad = text_trim_end(text_of(r.content, parsed.keep));
            log_step(step, s->max_steps, "no \"Follow up:\" or final answer, reminding the model: ", bad);
            put_view(&pad, bad);
            put(&pad, "\n");
            put(&pad, CORRECTION);
        } else {
            put(&msg, "the llm's output has neither \"Follow up:\" nor \"So the final answer is:\" (");
            put_int(&msg, p.corrections + 1);
            put(&msg, " tries); its last output was: \"");
            put_clipped(&msg, text_trim(text_of(r.content, r.content_len)), QUOTE_BYTES);
            put(&msg, "\"; use a stronger model or a prompt with examples it can follow");
            st = stop_error(out, &msg);
            done = true;
        }
        cs_llm_response_free(&r);
    }
    if (!done) st = stop_max_steps(out, s, &p);
    cs_jw_free(&pad);
    cs_jw_free(&msg);
    cs_jw_free(&p.question);
    cs_jw_free(&p.observation);
    return st;
}

static cs_status self_ask(const cs_json *in, cs_jw *out) {
    const cs_json *input = cs_json_get(in, "input");
    if (!cs_json_is(input, CS_JSON_STRING)) {
        static const char m[] = "self-ask expects {\"input\": \"<question>\", \"llms\": [...], \"tools\": [...]}";
        return answer(out, "error", m, sizeof m - 1);
    }
    text_view question = text_trim(text_of(input->str, input->len));
    if (!question.n) {
        static const char m[] = "the question is empty: ask self-ask a question";
        return answer(out, "error", m, sizeof m - 1);
    }
    settings s;
    cs_jw problem;
    cs_jw_init(&problem);
    cs_status st;
    if (!settings_read(in, &s, &problem)) st = stop_error(out, &problem);
    else st = run(&s, question, out);
    cs_jw_free(&problem);
    settings_free(&s);
    return st;
}

CS_EXPORT(call) { return cs_run(self_ask); }
