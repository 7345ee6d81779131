"""`synthweb crawler` argument checks (no broker needed: they fail before connecting)."""

import pytest

from synthweb.cli import build_parser, main


@pytest.mark.parametrize(
    "argv", [["crawler", "-s", "NO_EQUALS_SIGN"], ["crawler", "--max-jobs", "-1"], ["crawler", "--idle-exit", "-2"]]
)
def test_bad_arguments_are_user_errors(argv, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("synthweb: error:")


def test_options_parsed():
    args = build_parser().parse_args(
        ["crawler", "--max-jobs", "3", "--idle-exit", "1.5", "--allow-private-networks", "-s", "A=1", "-s", "B=x=y"]
    )
    assert (args.max_jobs, args.idle_exit, args.allow_private_networks, args.set) == (3, 1.5, True, ["A=1", "B=x=y"])
