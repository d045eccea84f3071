/* {{name}}: a Chainsocket agent that hands its input to the first tool the app gave it and answers
 * with what the tool said. A real agent would ask an LLM (cs_call_llm) which tool to call, and how. */
#include "chainsocket.h"

/* Writes the answer {"output": a + b + c, "finish_reason": finish}. */
static cs_status answer(cs_jw *out, const char *finish, const char *a, const char *b, const char *c, size_t c_len) {
    cs_jw text; /* a cs_jw doubles as a string builder (raw bytes only) */
    cs_jw_init(&text);
    cs_jw_append(&text, a, cs_strlen(a));
    cs_jw_append(&text, b, cs_strlen(b));
    cs_jw_append(&text, c, c_len);
    if (!cs_jw_ok(&text)) { /* out of memory: the builder's bytes are incomplete */
        cs_jw_free(&text);
        return cs_error("out of memory", NULL);
    }
    cs_jw_object_begin(out); /* commas and escaping are the writer's job */
    cs_jw_key(out, "output");
    cs_jw_string_n(out, text.data, text.len);
    cs_jw_key(out, "finish_reason");
    cs_jw_string(out, finish);
    cs_jw_object_end(out);
    cs_jw_free(&text);
    return CS_OK;
}

/* {"input", "session", "llms": [D], "tools": [D], "agents": [D]} -> {"output", "finish_reason"}, where
 * each descriptor D is {"name", "description", "input_schema"?}: the tools come from app.yaml, by
 * name, so an agent never hard-codes one. */
static cs_status handle(const cs_json *in, cs_jw *out) {
    const char *tool = cs_json_get_string(cs_json_at(cs_json_get(in, "tools"), 0), "name");
    if (!tool) {
        const char *msg = "this agent has no tool: list one under its `tools:` in app.yaml";
        return answer(out, "error", "", "", msg, cs_strlen(msg));
    }
    const char *input = cs_json_get_string(in, "input");

    cs_tool_response r;
    if (cs_call_tool(tool, input ? input : "", &r) != CS_OK) {
        /* The host refused the call or the tool crashed (CS_ERR_HOST: cs_last_error()->code is
         * "not_declared", "callee_failed", ...). Report it as the answer rather than failing the run. */
        const char *msg = cs_errmsg();
        return answer(out, "error", tool, " failed: ", msg, cs_strlen(msg));
    }
    cs_status st = r.is_error /* the tool ran and says what went wrong */
        ? answer(out, "error", tool, " failed: ", r.output, r.output_len)
        : answer(out, "final_answer", tool, " says: ", r.output, r.output_len);
    cs_tool_response_free(&r);
    return st;
}

/* The export the host runs: JSON in, handle(), JSON out; an error status fails the call with its
 * message. */
CS_EXPORT(call) { return cs_run(handle); }
