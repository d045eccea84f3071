"""The calculator tool (plugins/calculator, Zig) through a real app run: results, formatting, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cspm.planner import load_app
from cspm.runtime.engine import Runtime
from cspm.runtime.trace import Span
from tests.conftest import PLUGINS, plugin_wasm, write_app


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """One app for the whole module: the tool is pure, so cases cannot influence each other."""
    plugin_wasm("calculator")
    folder = tmp_path_factory.mktemp("calc")
    app = write_app(folder, f"""
entry: calc
tools:
  - {{name: calc, description: arithmetic, plugin_name: {PLUGINS / 'calculator'}}}
""")
    with load_app(app) as runtime:
        yield runtime


def run(rt: Runtime, expression: str) -> dict[str, Any]:
    return rt.run(expression).response


def invoke(rt: Runtime, payload: dict[str, Any]) -> dict[str, Any]:
    response, _ = rt.invoke(rt.nodes["calc"], payload, None, Span("calc", "tool"), rt.session)
    return response


RESULTS = [
    # precedence and associativity
    ("1+2*3", "7"), ("(1+2)*3", "9"), ("10-2-3", "5"), ("64/4/2", "8"), ("2^3^2", "512"), ("2**3**2", "512"),
    ("2*3^2", "18"), ("7 % 4 * 2", "6"), ("-7 % 3", "2"), ("5.5 % 2", "1.5"),
    # unary signs: ^ binds tighter than a sign
    ("-2^2", "-4"), ("(-2)^2", "4"), ("2^-1", "0.5"), ("2*-3", "-6"), ("--3", "3"), ("+5", "5"), ("-(-3)", "3"),
    # numbers
    ("1.5e3", "1500"), ("2E-3", "0.002"), (".5+.25", "0.75"), ("2,000 * 3", "6000"), ("1,234,567.5", "1234567.5"),
    ("(1,000)", "1000"), ("max(1,2)", "2"), ("pow(2,10)", "1024"), ("max(1, 000)", "1"),
    # functions and constants, any case
    ("sqrt(16)", "4"), ("abs(-3.5)", "3.5"), ("sin(0)", "0"), ("cos(0)", "1"), ("tan(0)", "0"),
    ("asin(1)*2", "3.14159265358979"), ("acos(-1)", "3.14159265358979"), ("atan(1)*4", "3.14159265358979"),
    ("ln(e)", "1"), ("log(1000)", "3"),
    ("log2(1024)", "10"), ("exp(0)", "1"), ("exp(1)", "2.71828182845905"), ("floor(-2.5)", "-3"), ("ceil(2.1)", "3"),
    ("round(2.5)", "3"), ("round(-2.5)", "-3"), ("min(3, 1, 2)", "1"), ("max(-1, -5)", "-1"), ("pow(2, 0.5)^2", "2"),
    ("PI", "3.14159265358979"), ("Sqrt(9) + E - e", "3"), ("SIN(pi)", "0"), ("cos(pi/2)", "0"), ("log10(100)", "2"),
    # formatting: exact integers, no float noise, scientific notation at the extremes
    ("0.1+0.2", "0.3"), ("1.1*1.1", "1.21"), ("100-99.99", "0.01"), ("1/3", "0.333333333333333"),
    ("2/3", "0.666666666666667"), ("2^53", "9007199254740992"), ("-(2^53)", "-9007199254740992"),
    ("2^64", "1.84467440737096e+19"), ("1e21", "1e+21"), ("1e-7", "0.0000001"), ("1e-8", "1e-8"), ("-0", "0"),
    ("123456789012", "123456789012"), ("10/4", "2.5"), ("sqrt(2)", "1.4142135623731"),
    # noise that LLMs add around an expression
    ("  2+2  ", "4"), ("2+2 =", "4"), ("2+2=?", "4"), ("`3*4`", "12"), ("```\n3*4\n```", "12"),
    ("```python\n3*4\n```", "12"), ("'3*4'", "12"), ('"3*4" =', "12"), ("$3*4$", "12"), ("3 × 4 − 1 ÷ 1", "11"),
]


@pytest.mark.parametrize(("expression", "expected"), RESULTS)
def test_results(rt: Runtime, expression: str, expected: str) -> None:
    assert run(rt, expression) == {"output": expected, "is_error": False}


@pytest.mark.parametrize(("expression", "expected"), [("2 * (3 + 4)", "14"), ("`sqrt(2)^2` =", "2")])
def test_arguments_form(rt: Runtime, expression: str, expected: str) -> None:
    assert invoke(rt, {"arguments": {"expression": expression}}) == {"output": expected, "is_error": False}


ERRORS = [
    # syntax: the position (in characters) and the offending character
    ("2 + * 3", "syntax error at position 5: unexpected '*'"),
    ("1)", "syntax error at position 2: unexpected ')'"),
    ("((1)", "missing ')' to close the '(' at position 1"),
    ("√4 + 1", "syntax error at position 1: unexpected '√'"),
    ("é + 3 @ 4", "position 1: unexpected 'é'"),
    ("2x", "position 2: unexpected 'x': an operator is missing"),
    ("1.2.3", "position 4: unexpected '.'"),
    ("1,00", "position 2: unexpected ','"),
    ("3 +", "ends too early"),
    ("", "empty expression"),
    ("``", "empty expression"),
    # names
    ("sqr(4)", "unknown function 'sqr' at position 1 (did you mean 'sqrt'?)"),
    ("2 * pie", "unknown name 'pie' at position 5 (did you mean 'pi'?)"),
    ("x + 1", "unknown name 'x' at position 1: there are no variables"),
    ("frobnicate(2)", "unknown function 'frobnicate'"),
    ("sqrt", "is a function: write sqrt(x)"),
    ("pi(2)", "is a constant, not a function"),
    # arithmetic
    ("1/0", "division by zero at position 2"),
    ("5 % (2-2)", "division by zero at position 3"),
    ("0^-1", "division by zero"),
    ("sqrt(-1)", "math domain error at position 1: sqrt(-1) is not a real number"),
    ("ln(0)", "ln(0) is undefined: the argument must be greater than 0"),
    ("log(-10)", "log(-10) is undefined"),
    ("asin(2)", "asin(2) is undefined: the argument must be between -1 and 1"),
    ("(-8)^(1/3)", "is not a real number (a negative number raised to a fractional power)"),
    ("tan(pi/2)", "tan has no value"),
    ("10^400", "overflow at position 3"),
    ("exp(1000)", "overflow"),
    ("1e400", "the number 1e400 is too large"),
    # arity
    ("pow(2)", "pow at position 1 takes 2 arguments, got 1"),
    ("sqrt(1, 2)", "sqrt at position 1 takes 1 argument, got 2"),
    ("sqrt(1,500)", "write 1000, not 1,000"),
    ("min()", "min at position 1 takes at least 1 argument, got 0"),
    ("log(8, 2)", "for base b write ln(x)/ln(b)"),
    ("max(1,000)", "ambiguous ',' at position 6"),
]


@pytest.mark.parametrize(("expression", "message"), ERRORS)
def test_errors(rt: Runtime, expression: str, message: str) -> None:
    result = rt.run(expression)
    assert result.response["is_error"] is True and result.finish_reason == "error"
    assert message in result.output


def test_syntax_error_comes_before_a_domain_error(rt: Runtime) -> None:
    assert "syntax error at position 12" in run(rt, "sqrt(-1) + )")["output"]


def test_arguments_errors(rt: Runtime) -> None:
    assert invoke(rt, {"arguments": {"expression": "1/0"}})["output"].startswith("division by zero")
    missing = invoke(rt, {"arguments": {"expr": "1+1"}})
    assert missing["is_error"] and '"expression"' in missing["output"]


def test_nesting_limit_is_an_answer_not_a_trap(rt: Runtime) -> None:
    assert run(rt, "(" * 64 + "1" + ")" * 64)["output"] == "1"
    for deep in ["(" * 65 + "1" + ")" * 65, "(" * 4000, "-" * 4000 + "1", "2^" * 1000 + "2", "sqrt(" * 800]:
        out = run(rt, deep)
        assert out["is_error"] and "nested too deeply" in out["output"], deep[:20]
    assert run(rt, "2+2")["output"] == "4"  # the instance is still healthy


def test_length_limit(rt: Runtime) -> None:
    assert run(rt, "+".join(["1"] * 2048)) == {"output": "2048", "is_error": False}  # 4095 bytes
    out = run(rt, "+".join(["1"] * 2049))
    assert out["is_error"] and "expression too long: 4097 bytes (the limit is 4096)" in out["output"]
    assert "too long" in run(rt, "1" * 100_000)["output"]


def test_manifest_schema_reaches_agents(rt: Runtime) -> None:
    descriptor = rt.nodes["calc"].descriptor()
    assert descriptor["input_schema"]["required"] == ["expression"]


def test_manifest_asks_for_no_capabilities() -> None:
    text = (PLUGINS / "calculator" / "plugin.yaml").read_text()
    assert "hosts: []" in text and "kv: false" in text
