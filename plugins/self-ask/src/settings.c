/* settings.c - see settings.h. Config values arrive as strings (numbers as their JSON text). */
#include "settings.h"

static void put(cs_jw *w, const char *s) { cs_jw_append(w, s, cs_strlen(s)); }

/* A number from config `key`; false (and a problem) when set but not a number in [min, max]. */
static bool config_number(const char *key, double min, double max, bool integer, bool *has, double *value,
                          cs_jw *problem) {
    cs_buf raw = {0};
    *has = false;
    if (cs_config_get(key, &raw) != CS_OK) return true;
    double v = 0;
    bool ok = cs_json_parse_double(raw.data, raw.len, &v) && v >= min && v <= max &&
              (!integer || v == (double)(int64_t)v);
    if (!ok) {
        char lo[32], hi[32];
        lo[cs_json_format_double(min, lo)] = 0;
        hi[cs_json_format_double(max, hi)] = 0;
        put(problem, "config `");
        put(problem, key);
        put(problem, integer ? "` must be an integer from " : "` must be a number from ");
        put(problem, lo);
        put(problem, " to ");
        put(problem, hi);
        put(problem, ", not '");
        cs_jw_append(problem, raw.data, raw.len);
        put(problem, "'");
    } else {
        *has = true;
        *value = v;
    }
    cs_buf_free(&raw);
    return ok;
}

/* The descriptor named by config `key` among `list`, else the first one. */
static bool choose(const cs_json *list, const char *key, const char *kind, const char **name, cs_jw *problem) {
    cs_buf wanted = {0};
    bool named = cs_config_get(key, &wanted) == CS_OK && wanted.len;
    *name = NULL;
    for (const cs_json *d = cs_json_is(list, CS_JSON_ARRAY) ? list->child : NULL; d; d = d->next) {
        const char *n = cs_json_get_string(d, "name");
        if (n && (!named || cs_streq(n, wanted.data))) {
            *name = n;
            break;
        }
    }
    if (!*name) {
        if (named) {
            put(problem, "config `");
            put(problem, key);
            put(problem, "` names ");
            put(problem, kind);
            put(problem, " '");
            put(problem, wanted.data);
            put(problem, "', which is not among the ");
            put(problem, kind);
            put(problem, "s given to this agent (");
            const char *sep = "";
            for (const cs_json *d = cs_json_is(list, CS_JSON_ARRAY) ? list->child : NULL; d; d = d->next) {
                put(problem, sep);
                put(problem, cs_json_get_string(d, "name") ? cs_json_get_string(d, "name") : "?");
                sep = ", ";
            }
            put(problem, "): list it under the agent's `");
            put(problem, kind);
            put(problem, "s:` in app.yaml or fix the name");
        } else {
            put(problem, "self-ask needs ");
            put(problem, cs_streq(kind, "llm") ? "an llm to reason" : "a tool to answer its follow-up questions");
            put(problem, ": list one under the agent's `");
            put(problem, kind);
            put(problem, "s:` in app.yaml");
        }
    }
    cs_buf_free(&wanted);
    return *name != NULL;
}

bool settings_read(const cs_json *input, settings *s, cs_jw *problem) {
    cs_memset(s, 0, sizeof *s);
    s->max_steps = DEFAULT_MAX_STEPS;
    if (!choose(cs_json_get(input, "llms"), "llm", "llm", &s->llm, problem)) return false;
    if (!choose(cs_json_get(input, "tools"), "tool", "tool", &s->tool, problem)) return false;
    cs_buf calc = {0};
    bool calculator = cs_config_get("calculator", &calc) == CS_OK && calc.len;
    cs_buf_free(&calc);
    if (calculator && !choose(cs_json_get(input, "tools"), "calculator", "tool", &s->calculator, problem))
        return false;
    cs_buf flag = {0};
    if (cs_config_get("choices", &flag) == CS_OK) {
        s->choices = flag.len == 4 && cs_memcmp(flag.data, "true", 4) == 0;
        bool valid = s->choices || (flag.len == 5 && cs_memcmp(flag.data, "false", 5) == 0);
        cs_buf_free(&flag);
        if (!valid) {
            put(problem, "config `choices` must be true or false");
            return false;
        }
    }
    bool has = false;
    double v = 0;
    if (!config_number("max_steps", 1, MAX_MAX_STEPS, true, &has, &v, problem)) return false;
    if (has) s->max_steps = (int64_t)v;
    if (!config_number("max_tokens", 1, 1e9, true, &s->has_max_tokens, &v, problem)) return false;
    if (s->has_max_tokens) s->max_tokens = (int64_t)v;
    if (!config_number("temperature", 0, 2, false, &s->has_temperature, &s->temperature, problem)) return false;
    if (cs_config_get("prompt", &s->prompt) != CS_OK) s->prompt.data = NULL, s->prompt.len = 0;
    return true;
}

void settings_free(settings *s) { cs_buf_free(&s->prompt); }
