/* parse.c - see parse.h. Mirrors LangChain's SelfAskOutputParser, with more tolerance. */
#include "parse.h"

static const char FINAL_MARKER[] = "so the final answer is";
static const char INVENTED_OBSERVATION[] = "intermediate answer:";

/* Length of a follow-up marker at `at` ("follow up:", "Follow-up question:", "followup :"), or 0. */
static size_t follow_up_marker(text_view line, size_t at) {
    if (!text_has_ci(line, at, "follow")) return 0;
    size_t i = at + 6;
    if (i < line.n && (line.p[i] == ' ' || line.p[i] == '-')) i++;
    if (!text_has_ci(line, i, "up")) return 0;
    i += 2;
    while (i < line.n && line.p[i] == ' ') i++;
    if (text_has_ci(line, i, "question")) {
        i += 8;
        if (i < line.n && (line.p[i] == 's' || line.p[i] == 'S')) i++;
        while (i < line.n && line.p[i] == ' ') i++;
    }
    if (i >= line.n || line.p[i] != ':') return 0;
    return i + 1 - at;
}

/* "Paris." -> "Paris", but "U.S." and "J." keep their period (an abbreviation, not a full stop). */
static text_view strip_full_stop(text_view t) {
    if (t.n < 2 || t.p[t.n - 1] != '.') return t;
    char before = t.p[t.n - 2];
    bool single_capital = before >= 'A' && before <= 'Z' &&
                          (t.n == 2 || t.p[t.n - 3] == '.' || t.p[t.n - 3] == ' ');
    if (!single_capital) t.n--;
    return text_trim_end(t);
}

/* The answer after "so the final answer is" at `at` in the line [ls, le) of out; when the line has
 * nothing after the marker, the next non-empty line. */
static text_view final_answer(text_view out, size_t at, size_t le) {
    size_t i = at + sizeof FINAL_MARKER - 1;
    while (i < le && (out.p[i] == ' ' || out.p[i] == '\t')) i++;
    if (i < le && out.p[i] == ':') i++;
    text_view answer = text_trim(text_of(out.p + i, le - i));
    for (size_t next = le + 1; !answer.n && next < out.n;) {
        size_t end = next;
        while (end < out.n && out.p[end] != '\n') end++;
        answer = text_trim(text_of(out.p + next, end - next));
        next = end + 1;
    }
    return strip_full_stop(answer);
}

parsed_step parse_step(text_view out) {
    parsed_step s = {STEP_MALFORMED, {0, 0}, 0};
    long invented = text_find_ci(out, 0, INVENTED_OBSERVATION);
    if (invented >= 0) out.n = (size_t)invented;

    for (size_t ls = 0; ls < out.n;) {
        size_t le = ls;
        while (le < out.n && out.p[le] != '\n') le++;
        text_view line = text_of(out.p + ls, le - ls);
        for (size_t i = 0; i < line.n; i++) {
            if (text_has_ci(line, i, FINAL_MARKER)) {
                text_view answer = final_answer(out, ls + i, le);
                if (!answer.n) break; /* "So the final answer is:" and nothing after it */
                s.kind = STEP_FINAL;
                s.text = answer;
                return s;
            }
            size_t marker = follow_up_marker(line, i);
            if (marker) {
                text_view question = text_trim(text_of(line.p + i + marker, line.n - i - marker));
                if (!question.n) break;
                s.kind = STEP_FOLLOW_UP;
                s.text = question;
                s.keep = (size_t)(text_trim_end(line).p + text_trim_end(line).n - out.p);
                return s;
            }
        }
        ls = le + 1;
    }
    s.keep = out.n; /* malformed: everything before an invented observation */
    return s;
}

bool parse_calculation(text_view question, text_view *expression) {
    text_view q = text_trim(question);
    if (!text_has_ci(q, 0, "calculate")) return false;
    size_t i = 9;
    if (i < q.n && q.p[i] != ' ' && q.p[i] != ':' && q.p[i] != '\t') return false; /* "Calculated ..." */
    while (i < q.n && (q.p[i] == ' ' || q.p[i] == '\t')) i++;
    if (i < q.n && q.p[i] == ':') i++;
    *expression = text_trim(text_of(q.p + i, q.n - i));
    return expression->n > 0;
}

bool parse_choices(text_view question, text_view *a, text_view *b) {
    text_view q = text_trim(question);
    if (q.n < 2 || q.p[q.n - 1] != '?') return false;
    q.n--;
    long or_at = -1;
    for (long at = 0; (at = text_find_ci(q, (size_t)at, " or ")) >= 0; at++) or_at = at;
    if (or_at < 0) return false;
    long comma = -1;
    for (long i = 0; i + 1 < or_at; i++)
        if (q.p[i] == ',' && q.p[i + 1] == ' ') comma = i;
    if (comma < 0) return false;
    *a = text_trim(text_of(q.p + comma + 2, (size_t)(or_at - comma - 2)));
    *b = text_trim(text_of(q.p + or_at + 4, q.n - (size_t)or_at - 4));
    return a->n > 0 && b->n > 0;
}

/* Length of a number at `at` ("-12", "1867", "3.5"), or 0; a sign only where no word precedes it. */
static size_t number_at(text_view t, size_t at) {
    size_t i = at;
    if (i < t.n && t.p[i] == '-') i++;
    size_t digits = i;
    while (i < t.n && t.p[i] >= '0' && t.p[i] <= '9') i++;
    if (i == digits) return 0;
    if (i + 1 < t.n && t.p[i] == '.' && t.p[i + 1] >= '0' && t.p[i + 1] <= '9')
        for (i++; i < t.n && t.p[i] >= '0' && t.p[i] <= '9';) i++;
    return i - at;
}

bool parse_binary(text_view expression, char *op) {
    text_view e = text_trim(expression);
    size_t x = number_at(e, 0);
    if (!x) return false;
    size_t i = x;
    while (i < e.n && e.p[i] == ' ') i++;
    if (i >= e.n || (e.p[i] != '+' && e.p[i] != '-' && e.p[i] != '*' && e.p[i] != '/')) return false;
    *op = e.p[i++];
    while (i < e.n && e.p[i] == ' ') i++;
    return number_at(e, i) > 0; /* what follows the second number is the model's to lose: both are chosen */
}

static bool is_word_byte(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (unsigned char)c >= 0x80;
}

size_t operands_seen(text_view pad, text_view out[MAX_OPERANDS]) {
    static const char MARK[] = "\nintermediate answer:";
    size_t n = 0;
    for (long at = 0; (at = text_find_ci(pad, (size_t)at, MARK)) >= 0;) {
        size_t i = (size_t)at + sizeof MARK - 1;
        size_t end = i;
        while (end < pad.n && pad.p[end] != '\n') end++;
        for (; i < end; i++) {
            if (i > 0 && is_word_byte(pad.p[i - 1])) continue; /* inside a word: "A1", "x2" */
            size_t len = number_at(text_of(pad.p, end), i);
            if (!len || (i + len < end && is_word_byte(pad.p[i + len]))) continue;
            text_view num = text_of(pad.p + i, len);
            bool seen = false;
            for (size_t k = 0; k < n && !seen; k++)
                seen = out[k].n == num.n && cs_memcmp(out[k].p, num.p, num.n) == 0;
            if (!seen) {
                if (n == MAX_OPERANDS) { /* keep the most recent */
                    for (size_t k = 1; k < n; k++) out[k - 1] = out[k];
                    n--;
                }
                out[n++] = num;
            }
            i += len - 1;
        }
        at = (long)end;
    }
    return n;
}
