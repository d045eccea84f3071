/* prompt.h - the self-ask prompt: the paper's few-shot examples, then the question. */
#ifndef SELF_ASK_PROMPT_H
#define SELF_ASK_PROMPT_H

#include "chainsocket.h"

/* The four examples of Press et al. 2022 (as in LangChain's SelfAskWithSearch). */
extern const char SELF_ASK_FEW_SHOT[];

/* Start the scratchpad: prefix (the few-shot examples, or the app's prompt when non-empty), a blank
 * line, then "Question: {input}\nAre follow up questions needed here:". */
void prompt_begin(cs_jw *pad, const char *prefix, size_t prefix_len, const char *question, size_t question_len);

#endif
