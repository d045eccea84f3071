/* settings.h - the agent's configuration and the llm/tool it was given, checked once per call. */
#ifndef SELF_ASK_SETTINGS_H
#define SELF_ASK_SETTINGS_H

#include "chainsocket.h"

#define DEFAULT_MAX_STEPS 8
#define MAX_MAX_STEPS 100

typedef struct {
    const char *llm;  /* name to call_llm (borrowed from the input document) */
    const char *tool; /* name to call_tool (borrowed from the input document) */
    const char *calculator; /* tool for "Follow up: Calculate <expression>", or NULL (borrowed) */
    bool choices;     /* the final answer of an "…, A or B?" question is one of A and B */
    int64_t max_steps;
    bool has_max_tokens, has_temperature;
    int64_t max_tokens;
    double temperature;
    cs_buf prompt; /* the app's prompt (replaces the few-shot prefix); empty when unset */
} settings;

/* Fill s from config and the agent input's `llms`/`tools` descriptors. On a problem, returns false
 * and writes a message saying what to fix into problem (a string builder). */
bool settings_read(const cs_json *input, settings *s, cs_jw *problem);
void settings_free(settings *s);

#endif
