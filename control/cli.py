"""`openclaw-saas`: the one command operators and developers use.

    openclaw-saas migrate                      apply PostgreSQL migrations
    openclaw-saas topics create                create the Kafka topics of schemas/topics.yaml
    openclaw-saas tenant create ...            create a tenant (prints JSON, incl. webhook)
    openclaw-saas tenant list                  list tenants (JSON, no secrets)
    openclaw-saas tenant show TENANT           lifecycle status, plan, container, health
    openclaw-saas tenant set-webhook TENANT    new secret token + Telegram setWebhook
    openclaw-saas tenant unbind-telegram TENANT   Telegram deleteWebhook, remove the binding
    openclaw-saas whatsapp bind TENANT ...     bind a WhatsApp number (Cloud API) to a tenant
    openclaw-saas whatsapp unbind TENANT ID    remove a tenant's WhatsApp number
    openclaw-saas email bind|drafts|approve|discard   agent mail addresses, reply drafts
    openclaw-saas usage show --tenant T        current period: used, limit, held, alerts
    openclaw-saas overage release --tenant T   re-meter a tenant's held messages now
    openclaw-saas run SERVICE                  run one service in the foreground
    openclaw-saas dev                          the whole local stack (what `make run` does)

Every setting comes from the environment (README, "Settings").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common.settings import Settings, SettingsError
from common.telemetry import setup_logging
from control import commands
from control.commands import SERVICES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openclaw-saas",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="apply pending PostgreSQL migrations (DATABASE_URL)")
    p.set_defaults(func=commands.cmd_migrate)

    p = sub.add_parser("topics", help="Kafka topics")
    tsub = p.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    tsub.add_parser("create", help="create missing topics (KAFKA_BOOTSTRAP, TOPIC_PARTITIONS)")
    p.set_defaults(func=commands.cmd_topics)

    p = sub.add_parser("tenant", help="tenant administration")
    tsub = p.add_subparsers(dest="tenant_command", required=True, metavar="ACTION")
    c = tsub.add_parser(
        "create",
        help="create a tenant; prints it as JSON with its webhook URL and secret token",
    )
    c.add_argument("--name", required=True, help="display name")
    c.add_argument("--plan", default="individual", help="plan id: individual|business|enterprise")
    c.add_argument("--owner-email", required=True)
    c.add_argument("--telegram-bot-token", help="the tenant's bot token from @BotFather")
    c.add_argument("--gateway-url", required=True, help="the tenant's OpenClaw gateway base URL")
    c.add_argument("--gateway-token", required=True, help="the gateway's bearer token")
    c.add_argument("--agent-id", help="the tenant's agent id (default: derived from the name)")
    c.add_argument(
        "--gateway-agent-id", help="agent id inside the gateway (default: the tenant's agent id)"
    )
    c.add_argument(
        "--no-webhook",
        action="store_true",
        help="do not call Telegram setWebhook (default: set it; exit 3 if that fails)",
    )
    c.set_defaults(func=commands.cmd_tenant_create)
    ls = tsub.add_parser("list", help="list tenants as JSON (no secrets)")
    ls.set_defaults(func=commands.cmd_tenant_list)
    sh = tsub.add_parser(
        "show", help="one tenant: lifecycle status, plan, gateway container and its health"
    )
    sh.add_argument("tenant", help="tenant id or agent id")
    sh.set_defaults(func=commands.cmd_tenant_show)
    w = tsub.add_parser(
        "set-webhook",
        help="Telegram: new webhook secret token, setWebhook, print it (retry after a failure)",
    )
    w.add_argument("tenant", help="tenant id or agent id")
    w.set_defaults(func=commands.cmd_tenant_telegram)
    u = tsub.add_parser(
        "unbind-telegram",
        help="Telegram: deleteWebhook, then remove the bot binding (kept if Telegram fails)",
    )
    u.add_argument("tenant", help="tenant id or agent id")
    u.add_argument(
        "--force", action="store_true", help="remove the binding even if deleteWebhook fails"
    )
    u.set_defaults(func=commands.cmd_tenant_telegram)

    p = sub.add_parser("dlq", help="dead-letter topics: list what failed and why, replay it")
    dsub = p.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    for action, text in (
        ("list", "print every dead letter as a JSON line (stage, source, reason)"),
        ("replay", "re-produce dead letters to their source topic (idempotent downstream)"),
    ):
        a = dsub.add_parser(action, help=text)
        a.add_argument("--topic", help="a dead-letter topic, e.g. messages.admitted.dlq")
        a.add_argument("--stage", help="only dead letters of this stage")
        a.add_argument("--reason", help="only dead letters whose reason contains this text")
    p.set_defaults(func=commands.cmd_dlq)

    p = sub.add_parser("whatsapp", help="WhatsApp Business numbers (Cloud API)")
    wsub = p.add_subparsers(dest="whatsapp_command", required=True, metavar="ACTION")
    b = wsub.add_parser(
        "bind",
        help="bind a number to a tenant (again: rotate its credentials); prints the webhook URL",
    )
    b.add_argument("tenant", help="tenant id or agent id")
    b.add_argument("--phone-number-id", required=True, help="the number's Graph API id")
    b.add_argument("--access-token", required=True, help="system-user access token")
    b.add_argument("--app-secret", required=True, help="the Meta app's secret (signatures)")
    b.add_argument("--verify-token", required=True, help="the webhook verify token")
    b.add_argument("--template", help="approved template used outside the 24-hour window")
    b.add_argument("--template-language", default="en_US", help="the template's language")
    b.add_argument(
        "--template-text-param",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pass the reply text as the template's body parameter {{1}}",
    )
    u = wsub.add_parser("unbind", help="remove a tenant's number")
    u.add_argument("tenant", help="tenant id or agent id")
    u.add_argument("phone_number_id")
    p.set_defaults(func=commands.cmd_whatsapp)

    p = sub.add_parser("email", help="email channel: agent addresses, reply drafts")
    esub = p.add_subparsers(dest="email_command", required=True, metavar="ACTION")
    b = esub.add_parser("bind", help="bind agent-<id>@MAIL_DOMAIN to a tenant, set the reply mode")
    b.add_argument("tenant", help="tenant id or agent id")
    b.add_argument("--address", help="agent-<id>@MAIL_DOMAIN or <id> (default: the agent id)")
    b.add_argument(
        "--reply-mode", choices=("auto", "approve"), help="auto: send; approve: keep drafts"
    )
    d = esub.add_parser("drafts", help="list reply drafts as JSON (oldest first)")
    d.add_argument("--tenant", help="tenant id or agent id")
    d.add_argument("--status", choices=("pending", "sent", "discarded", "all"), default="pending")
    esub.add_parser("approve", help="send a draft through the SMTP relay").add_argument(
        "id", type=int
    )
    esub.add_parser("discard", help="drop a draft without sending it").add_argument("id", type=int)
    p.set_defaults(func=commands.cmd_email)

    p = sub.add_parser("usage", help="message quotas")
    usub = p.add_subparsers(dest="usage_command", required=True, metavar="ACTION")
    q = usub.add_parser("show", help="current period: used, limit, held, alerts (JSON)")
    q.add_argument("--tenant", required=True, help="tenant id or agent id")
    p.set_defaults(func=commands.cmd_usage)
    p = sub.add_parser("overage", help="the overage queue of held messages")
    osub = p.add_subparsers(dest="overage_command", required=True, metavar="ACTION")
    q = osub.add_parser(
        "release", help="re-meter a tenant's held messages against its current allowance"
    )
    q.add_argument("--tenant", required=True, help="tenant id or agent id")
    p.set_defaults(func=commands.cmd_usage)

    p = sub.add_parser("run", help="run one service in the foreground until SIGINT/SIGTERM")
    p.add_argument(
        "service",
        choices=SERVICES,
        help="ingress: webhooks -> Kafka; streams: Faust metering + session-sync; "
        "forwarder: admitted -> OpenClaw gateway; delivery: replies -> channels; "
        "smtp: inbound mail -> Kafka; provisioner: tenants.lifecycle -> tenants + Docker",
    )
    p.set_defaults(func=commands.cmd_run)

    p = sub.add_parser(
        "dev",
        help="start Kafka, PostgreSQL, an OpenClaw gateway, a Telegram stand-in and every "
        "service, create a demo tenant and print a curl to try (what `make run` does)",
    )
    p.add_argument("--state-dir", default=".state/dev", help="where the local servers keep data")
    p.add_argument("--fresh", action="store_true", help="wipe the state dir first")
    p.set_defaults(func=commands.cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"openclaw-saas: {err}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        result: int = args.func(settings, args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
