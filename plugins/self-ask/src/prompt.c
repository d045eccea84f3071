/* prompt.c - see prompt.h. */
#include "prompt.h"

#include "text.h"

const char SELF_ASK_FEW_SHOT[] =
    "Question: Who lived longer, Muhammad Ali or Alan Turing?\n"
    "Are follow up questions needed here: Yes.\n"
    "Follow up: How old was Muhammad Ali when he died?\n"
    "Intermediate answer: Muhammad Ali was 74 years old when he died.\n"
    "Follow up: How old was Alan Turing when he died?\n"
    "Intermediate answer: Alan Turing was 41 years old when he died.\n"
    "So the final answer is: Muhammad Ali\n"
    "\n"
    "Question: When was the founder of craigslist born?\n"
    "Are follow up questions needed here: Yes.\n"
    "Follow up: Who was the founder of craigslist?\n"
    "Intermediate answer: Craigslist was founded by Craig Newmark.\n"
    "Follow up: When was Craig Newmark born?\n"
    "Intermediate answer: Craig Newmark was born on December 6, 1952.\n"
    "So the final answer is: December 6, 1952\n"
    "\n"
    "Question: Who was the maternal grandfather of George Washington?\n"
    "Are follow up questions needed here: Yes.\n"
    "Follow up: Who was the mother of George Washington?\n"
    "Intermediate answer: The mother of George Washington was Mary Ball Washington.\n"
    "Follow up: Who was the father of Mary Ball Washington?\n"
    "Intermediate answer: The father of Mary Ball Washington was Joseph Ball.\n"
    "So the final answer is: Joseph Ball\n"
    "\n"
    "Question: Are both the directors of Jaws and Casino Royale from the same country?\n"
    "Are follow up questions needed here: Yes.\n"
    "Follow up: Who is the director of Jaws?\n"
    "Intermediate answer: The director of Jaws is Steven Spielberg.\n"
    "Follow up: Where is Steven Spielberg from?\n"
    "Intermediate answer: The United States.\n"
    "Follow up: Who is the director of Casino Royale?\n"
    "Intermediate answer: The director of Casino Royale is Martin Campbell.\n"
    "Follow up: Where is Martin Campbell from?\n"
    "Intermediate answer: New Zealand.\n"
    "So the final answer is: No\n";

void prompt_begin(cs_jw *pad, const char *prefix, size_t prefix_len, const char *question, size_t question_len) {
    text_view p = text_trim_end(text_of(prefix, prefix_len));
    text_view q = text_trim(text_of(question, question_len));
    cs_jw_append(pad, p.p, p.n);
    cs_jw_append(pad, "\n\nQuestion: ", 12);
    cs_jw_append(pad, q.p, q.n);
    static const char ask[] = "\nAre follow up questions needed here:";
    cs_jw_append(pad, ask, sizeof ask - 1);
}
