/* parse.h - reads one continuation of the self-ask scratchpad written by the model. */
#ifndef SELF_ASK_PARSE_H
#define SELF_ASK_PARSE_H

#include "text.h"

typedef enum {
    STEP_FOLLOW_UP, /* "Follow up: <question>": ask the tool */
    STEP_FINAL,     /* "So the final answer is: <answer>" */
    STEP_MALFORMED  /* neither marker */
} step_kind;

typedef struct {
    step_kind kind;
    text_view text; /* the question or the answer (a view into the output) */
    size_t keep;    /* bytes of the output that belong in the scratchpad: through the follow-up line;
                       when malformed, all of it before an invented "Intermediate answer:" */
} parsed_step;

/* Tolerant reading: markers in any case, "Follow up"/"Follow-up"/"Followup" (optionally followed by
 * "question"), no space after the colon, "So the final answer is" without a colon, a trailing
 * period; text after an "Intermediate answer:" the model invented itself is ignored. The first
 * marker wins: a follow-up before a final answer means the model has not seen the evidence yet. */
parsed_step parse_step(text_view output);

/* "Calculate 1867 - 1821" (any case, an optional colon) -> true and "1867 - 1821": a follow-up
 * for the calculator tool, which answers arithmetic exactly where a model would guess. */
bool parse_calculation(text_view question, text_view *expression);

/* "1867 - 1821" -> true and the operator '-'; false unless the expression starts with two numbers
 * around one of + - * / (the form whose operands are chosen among operands_seen). */
bool parse_binary(text_view expression, char *op);

#define MAX_OPERANDS 6 /* numbers offered as operands: 6 give 30 ordered pairs */

/* The numbers the tools answered in the scratchpad (in its "Intermediate answer:" lines), distinct, the
 * most recent MAX_OPERANDS in order of appearance; returns how many were written to out. */
size_t operands_seen(text_view pad, text_view out[MAX_OPERANDS]);

/* The two alternatives a question offers, "…, A or B?" -> A and B (the text after the last ", "
 * before the last " or ", and from there to the "?"); false for other questions. */
bool parse_choices(text_view question, text_view *a, text_view *b);

#endif
