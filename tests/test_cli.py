"""The command line: every verb has --help; user errors are one line and exit 2."""
import argparse
import importlib
import subprocess
import sys

import pytest

from sesame.cli.main import VERBS, build_parser, main


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for verb in verbs():
        assert verb in out
    # like with like: the verbs the modules in VERBS register, one by one, are the parser's verbs
    registered = []
    for name in VERBS:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"sesame.cli.{name}").add_parser(sub)
        assert sub.choices, f"sesame.cli.{name} registers no verb"
        registered += list(sub.choices)
    assert sorted(registered) == sorted(verbs()) and len(set(registered)) == len(registered)


def verbs() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    return list(sub.choices)


@pytest.mark.parametrize("verb", verbs())
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([verb, "--help"])
    assert exit_.value.code == 0
    assert "usage: sesame " + verb in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["summary", "bert-tny"], "unknown preset 'bert-tny' (did you mean `bert-tiny`?)"),
    (["summary", "bert-tiny", "--set", "model.layrs=3"], "unknown key `layrs` in [model] (did you mean `layers`?)"),
    (["summary", "bert-tiny", "--set", "model.num_heads=3"], "does not divide model.hidden"),
    (["convert", "--to-hf", "/nonexistent/model", "/tmp/out"], "does not exist"),
    (["convert", "--from-hf", "/nonexistent/hf", "/tmp/out"], "is not a directory"),
])
def test_user_errors_print_one_line_and_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1


def test_no_traceback_without_debug_and_traceback_with_it():
    cmd = [sys.executable, "-m", "sesame.cli.main", "summary", "nope"]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_summary_runs_and_demo_parses(capsys):  # the README test runs the demo itself
    assert main(["summary", "llama-tiny", "--set", "model.layers=2"]) == 0
    out = capsys.readouterr().out
    assert "llama decoder: 2 layers" in out and "rotary" in out
    assert build_parser().parse_args(["demo"]).verb == "demo"
