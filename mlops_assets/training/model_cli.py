"""`mlops model ...`: the registered model on the command line (show, history, promote, rollback, card,
reproduce). The CLI (mlops_assets/cli.py) adds it with the profile's registry and lake."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_model_command(commands: Any, registry_of: Callable[[], tuple], lake: Callable[[], Any]) -> None:
    """The `model` subcommand on the CLI's subparsers (`registry_of` gives (client, model name), `lake`
    opens the lake, where the shadow evidence is)."""
    model = commands.add_parser(
        "model", help="the registered model: show, history, promote, rollback, card, reproduce"
    )
    model.add_argument("action", choices=["show", "history", "promote", "rollback", "card", "reproduce"])
    model.add_argument("--version", help="the version to promote, describe (card) or reproduce")
    model.add_argument("--reason", help="why (kept in the alias history)")
    model.add_argument("--html", metavar="PATH", help="card: write the card as HTML to PATH")
    model.add_argument(
        "--device", default="cpu", help="reproduce: cpu (default, deterministic), cuda or auto"
    )
    model.add_argument(
        "--shadow-days",
        type=int,
        help="promote: days of shadow evidence needed (default: the version's registration rules, else 0)",
    )
    model.add_argument("--shadow-auc-tolerance", type=float, help="promote: ROC-AUC a shadow day may lose")
    model.add_argument(
        "--shadow-log-loss-tolerance", type=float, help="promote: log loss a shadow day may add"
    )
    model.add_argument("--force", action="store_true", help="promote: over the shadow rules")
    model.set_defaults(handler=lambda args: cmd_model(args, registry_of, lake))


def model_card(client, name: str, args: argparse.Namespace) -> int:
    """Print version N's card as Markdown, or write it as HTML to `--html`."""
    from mlops_assets.training.card import build_html, card_markdown

    text = card_markdown(client, name, args.version)
    if args.html is None:
        print(text, end="")
        return 0
    path = Path(args.html)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_html(text, f"{name} version {args.version}"))
    print(f"wrote the model card of {name} version {args.version} to {path}")
    return 0


def model_reproduce(client, name: str, args: argparse.Namespace) -> int:
    """Retrain version N from its recorded set and settings; 0 when its holdout figures are the same."""
    import dagster as dg

    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.feature_store import feast_resource
    from mlops_assets.resources.storage import object_stores
    from mlops_assets.resources.warehouse import warehouse_resource
    from mlops_assets.training.reproduce import ReproductionError, report_lines, reproduce

    settings = load_settings()
    lake = object_stores(settings)["lake"]
    resources = {"feast": feast_resource(settings), "warehouse": warehouse_resource(settings, lake)}
    with dg.build_resources(resources) as built:
        try:
            result = reproduce(client, name, args.version, built.feast, built.warehouse, args.device)
        except ReproductionError as error:
            raise SystemExit(f"cannot reproduce {name} version {args.version}: {error}") from None
    for line in report_lines(result):
        print(line)
    return 0 if result.equal else 1


def model_promote(client, name: str, args: argparse.Namespace, by: str, lake: Callable[[], Any]) -> int:
    """Make version N the champion. When N was registered with `shadow_days` (or `--shadow-days` asks),
    only on that many days of monitoring/shadow_comparison evidence against the current champion;
    `--force` is a person's decision over the evidence (recorded as such)."""
    import dataclasses

    from mlops_assets.lib.keys import SHADOW_COMPARISON
    from mlops_assets.monitoring.records import read_records
    from mlops_assets.training import registry

    version = str(args.version)
    rules = registry.shadow_rules(client.get_model_version(name, version).tags)
    overrides = {
        "days": args.shadow_days,
        "auc_tolerance": args.shadow_auc_tolerance,
        "log_loss_tolerance": args.shadow_log_loss_tolerance,
    }
    rules = dataclasses.replace(rules, **{k: v for k, v in overrides.items() if v is not None})
    champion = registry.alias_version(client, name, registry.CHAMPION)
    reason = args.reason or "manual promotion"
    if rules.days > 0 and champion not in (None, version) and not args.force:
        records = read_records(lake(), SHADOW_COMPARISON)
        decision = registry.shadow_gate(records, champion, version, rules)
        if not decision.passed:
            print(f"{name}: version {version} stays challenger: {'; '.join(decision.reasons)}")
            return 1
        reason = args.reason or f"{rules.days} days of shadow evidence not worse than version {champion}"
    elif rules.days > 0 and args.force:
        reason = f"forced over the shadow rules: {reason}"
    event = registry.promote(client, name, version, by, reason)
    print(f"{name}: champion is version {event['version']} (was {event['previous']})")
    return 0


def cmd_model(args: argparse.Namespace, registry_of: Callable[[], tuple], lake: Callable[[], Any]) -> int:
    import getpass

    from mlops_assets.training import registry

    client, name = registry_of()
    by = f"cli:{getpass.getuser()}"
    try:
        if args.action == "card":
            return model_card(client, name, args)
        if args.action == "reproduce":
            return model_reproduce(client, name, args)
        if args.action == "promote":
            return model_promote(client, name, args, by, lake)
        if args.action == "rollback":
            event = registry.rollback(client, name, by)
            print(f"{name}: champion rolled back to version {event['version']} (was {event['previous']})")
        elif args.action == "history":
            for event in registry.history(client, name):
                print(
                    f"{event['at']}  {event['alias']:<10} -> v{event['version']:<4} {event['action']:<8} "
                    f"(was {event['previous']}) by {event['by']}: {event['reason']}"
                )
        else:
            for alias in (registry.CHAMPION, registry.CHALLENGER):
                print(f"{name}@{alias}: version {registry.alias_version(client, name, alias)}")
    except LookupError as error:
        raise SystemExit(str(error)) from None
    return 0
