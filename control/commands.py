"""What each `openclaw-saas` command does (`control.cli` parses the command line).

Each `cmd_*` takes the settings and the parsed arguments and returns the exit status; the
modules behind a command are imported when it runs, so `--help` stays quick.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from common.settings import Settings

SERVICES = ("ingress", "streams", "forwarder", "delivery", "smtp", "provisioner")


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from control.migrate import migrate

    applied = migrate(settings.database_url)
    print(json.dumps({"applied": applied}))
    return 0


def cmd_topics(settings: Settings, _args: argparse.Namespace) -> int:
    from common.kafka import ensure_topics

    print(json.dumps({"created": ensure_topics(settings)}))
    return 0


def cmd_tenant_create(settings: Settings, args: argparse.Namespace) -> int:
    from control.tenants import NewTenant, TenantError, create_tenant

    try:
        out = create_tenant(
            settings,
            NewTenant(
                name=args.name,
                plan=args.plan,
                owner_email=args.owner_email,
                telegram_bot_token=args.telegram_bot_token,
                gateway_url=args.gateway_url,
                gateway_token=args.gateway_token,
                agent_id=args.agent_id,
                gateway_agent_id=args.gateway_agent_id,
            ),
        )
    except TenantError as err:
        print(json.dumps({"error": str(err)}), file=sys.stderr)
        return 2
    if "telegram" in out and args.telegram_bot_token and not args.no_webhook:
        from control.telegram_binding import BotApiError, register_created

        try:
            register_created(settings, out, args.telegram_bot_token)
        except BotApiError as err:
            print(json.dumps(out, indent=2))
            print(
                f"warning: tenant {out['tenant_id']} was created but its Telegram webhook is"
                f" not set ({err.reason}); fix the cause, then run"
                f" `openclaw-saas tenant set-webhook {out['tenant_id']}`",
                file=sys.stderr,
            )
            return 3
    print(json.dumps(out, indent=2))
    return 0


def cmd_tenant_telegram(settings: Settings, args: argparse.Namespace) -> int:
    from control.telegram_binding import BotApiError, reset_webhook, unbind
    from control.tenants import TenantError

    try:
        if args.tenant_command == "set-webhook":
            out = reset_webhook(settings, args.tenant)
        else:
            out = unbind(settings, args.tenant, force=args.force)
    except TenantError as err:
        print(json.dumps({"error": str(err)}), file=sys.stderr)
        return 2
    except BotApiError as err:
        print(json.dumps({"error": err.reason}), file=sys.stderr)
        return 3
    print(json.dumps(out, indent=2))
    return 0 if out.get("webhook_deleted", True) else 3


def cmd_tenant_list(settings: Settings, _args: argparse.Namespace) -> int:
    from control.tenants import list_tenants

    print(json.dumps(list_tenants(settings), indent=2, default=str))
    return 0


def cmd_tenant_show(settings: Settings, args: argparse.Namespace) -> int:
    from control.tenant_status import show_tenant

    out = show_tenant(settings, args.tenant)
    if out is None:
        print(json.dumps({"error": f"no tenant {args.tenant!r}"}), file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_dlq(settings: Settings, args: argparse.Namespace) -> int:
    from control.dlq import DLQ_TOPICS, read_dead_letters, replay

    topics = [t for t in DLQ_TOPICS if args.topic in (None, t.value)]
    if not topics:
        print(f"unknown dead-letter topic {args.topic!r}", file=sys.stderr)
        return 2
    if args.dlq_command == "list":
        for topic in topics:
            for entry in read_dead_letters(settings, topic):
                print(json.dumps(entry.summary()))
        return 0
    if args.topic is None:
        print("replay needs --topic", file=sys.stderr)
        return 2
    print(json.dumps(replay(settings, topics[0], stage=args.stage, reason=args.reason)))
    return 0


def cmd_whatsapp(settings: Settings, args: argparse.Namespace) -> int:
    from control.tenants import TenantError
    from control.whatsapp import WhatsAppNumber, bind_whatsapp, unbind_whatsapp

    try:
        if args.whatsapp_command == "bind":
            number = WhatsAppNumber(
                phone_number_id=args.phone_number_id,
                access_token=args.access_token,
                app_secret=args.app_secret,
                verify_token=args.verify_token,
                template=args.template,
                template_language=args.template_language,
                template_text_param=args.template_text_param,
            )
            out = bind_whatsapp(settings, args.tenant, number)
        else:
            out = unbind_whatsapp(settings, args.tenant, args.phone_number_id)
    except TenantError as err:
        print(json.dumps({"error": str(err)}), file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0


def cmd_email(settings: Settings, args: argparse.Namespace) -> int:
    from control import email_admin as admin

    try:
        out: Any
        if args.email_command == "bind":
            out = admin.bind_email(
                settings, args.tenant, address=args.address, reply_mode=args.reply_mode
            )
        elif args.email_command == "drafts":
            out = admin.list_drafts(settings, tenant=args.tenant, status=args.status)
        elif args.email_command == "approve":
            out = admin.approve_draft(settings, args.id)
        else:
            out = admin.discard_draft(settings, args.id)
    except admin.EmailAdminError as err:
        print(json.dumps({"error": str(err)}), file=sys.stderr)
        return 1 if args.email_command == "approve" else 2
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_usage(settings: Settings, args: argparse.Namespace) -> int:
    from common.errors import KafkaUnavailable
    from control.usage import UsageError, request_release, usage_show

    try:
        if args.command == "usage":
            out = usage_show(settings, args.tenant)
        else:
            out = request_release(settings, args.tenant)
    except UsageError as err:
        print(json.dumps({"error": str(err)}), file=sys.stderr)
        return 2
    except KafkaUnavailable as err:
        print(json.dumps({"error": f"request not sent: {err.reason}"}), file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, default=str))
    return 0


def _service(name: str) -> Callable[[Settings], Coroutine[Any, Any, None]]:
    if name == "ingress":
        from ingress.main import run as run_ingress

        return run_ingress
    if name == "streams":
        from streams.main import run as run_streams

        return run_streams
    if name == "forwarder":
        from agents_bridge.main import run_forwarder

        return run_forwarder
    if name == "smtp":
        from ingress.smtp.main import run as run_smtp

        return run_smtp
    if name == "provisioner":
        from agents_bridge.provision.worker import run_provisioner

        return run_provisioner
    from agents_bridge.main import run_delivery

    return run_delivery


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from common.breaker import DlqBreakerTripped

    try:
        asyncio.run(_service(args.service)(settings))
    except DlqBreakerTripped as err:
        print(f"openclaw-saas run {args.service}: {err}", file=sys.stderr)
        return 3
    return 0


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from control.devrun import run_dev

    return run_dev(settings, state_dir=args.state_dir, fresh=args.fresh)
