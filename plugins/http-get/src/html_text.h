/*
 * html_text.h - readable text from HTML, for an LLM: no markup, no scripts or styles, block
 * elements as line breaks, entities decoded. A forgiving single pass, not a conforming HTML5
 * parser: it never fails, whatever the input.
 */
#ifndef HTML_TEXT_H
#define HTML_TEXT_H

#include "text_sink.h"

/* Writes the text of the first <title> (entities decoded, whitespace collapsed); nothing if none. */
void html_title(const char *html, size_t n, text_sink *out);
/* Writes the visible text of the document: <head>, <script>, <style>, <noscript>, <template>,
 * <svg>, <title>... are dropped; <p>, <div>, <li>, <br>, headings, table rows... become breaks. */
void html_text(const char *html, size_t n, text_sink *out);
/* Decodes the character reference at s[0] == '&' into utf8 (up to 4 bytes + a spare), sets *out_len,
 * and returns how many input bytes it spans; 0 when it is not a reference (then '&' is literal). */
size_t html_entity(const char *s, size_t n, char utf8[8], size_t *out_len);

#endif
