"""The command line: ``tickmark <command>`` or ``python -m server <command>``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import gc
import getpass
import logging
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence

from server.app import create_app, notification_policy, open_database, server_config
from server.clock import SystemClock
from server.core import accounts
from server.core.principal import Scope
from server.core.text import check_name
from server.errors import TickmarkError
from server.logs import configure_logging
from server.settings import Settings, SettingsError, local_url
from server.store import companies, users
from server.store.database import Database
from server.store.migrate import apply_migrations


logger = logging.getLogger("server.cli")


async def _with_db(
    settings: Settings, work: Callable[[Database], Awaitable[int]]
) -> int:
    db = await open_database(settings)
    try:
        return await work(db)
    finally:
        await db.close()


def _tune_garbage_collector() -> None:
    """Make the cyclic collector's full passes rare, for a server's heap.

    Each open socket is a few hundred objects that live as long as it
    does, and a full collection walks every one: with 5,000 sockets open,
    each full pass stopped the server for 70 to 480 ms, about twenty times
    in one run of the fan-out bench, and a message caught behind one waited
    that long. Full passes now wait for ten times as many young ones
    (three in the same run, still 400 to 650 ms each), and the objects made
    at startup (modules, classes, routes) are left out of every later
    pass. Young passes, a few milliseconds each, are as before.
    """
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    if "PUBLIC_URL" not in os.environ:
        # Follow the options, as from_env follows HOST and PORT.
        settings = dataclasses.replace(settings, public_url=local_url(host, port))
    # With the embedded database nobody runs a separate worker: do its work
    # here, so emails reach the local mailbox.
    run_worker = args.worker or settings.database_url is None
    app = create_app(settings, run_worker=run_worker)
    config = server_config(app, settings, host=host, port=port)
    print(
        f"Tickmark listens on {host}:{port}; users reach it at {settings.public_url}/",
        file=sys.stderr,
    )
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again
    # to die by it; exiting normally instead lets atexit handlers run, which
    # is what stops the embedded PostgreSQL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _tune_garbage_collector()
    uvicorn.Server(config).run()
    return 0


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for a clean stop of a loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from server.worker import build_worker

    async def work(db: Database) -> int:
        try:
            worker = build_worker(settings, db, SystemClock())
        except ValueError as exc:
            print(f"tickmark: {exc}", file=sys.stderr)
            return 2
        print(
            f"Tickmark worker: mail to {worker.mail_destination}, and webhooks",
            file=sys.stderr,
        )
        await worker.run(_stop_on_signals())
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_reply_server(settings: Settings, args: argparse.Namespace) -> int:
    from server.app import open_broker, policy_from
    from server.core.services import Services
    from server.live.events import LiveEvents
    from server.mail.reply_server import ReplyHandler, start_reply_server

    domain = settings.reply_domain
    if domain is None:
        print(
            "tickmark: set REPLY_DOMAIN to the domain whose mail comes here",
            file=sys.stderr,
        )
        return 2

    async def work(db: Database) -> int:
        # With Redis, open sessions see an emailed reply at once; with the
        # in-process broker they see it when they next load the thread.
        broker = open_broker(settings)
        await broker.start()
        try:
            services = Services(
                db,
                SystemClock(),
                LiveEvents(broker),
                policy_from(settings),
                notification_policy(settings),
            )
            handler = ReplyHandler(
                services, secret_key=settings.secret_key, reply_domain=domain
            )
            host, port = settings.reply_smtp_host, settings.reply_smtp_port
            server = await start_reply_server(handler, host, port)
            print(
                f"Tickmark takes replies to @{domain} over SMTP on {host}:{port}",
                file=sys.stderr,
            )
            await _stop_on_signals().wait()
            server.close()
            await server.wait_closed()
        finally:
            await broker.close()
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        db = await open_database(settings)
        try:
            async with db.connection() as conn:
                applied = await apply_migrations(conn)
        finally:
            await db.close()
        print("applied: " + ", ".join(applied) if applied else "up to date")
        return 0

    return asyncio.run(run())


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from server.demo import ACCOUNTS, DEMO_PASSWORD, load_demo

    async def work(db: Database) -> int:
        loaded = await load_demo(db, now=SystemClock().now())
        print("Demo data loaded." if loaded else "Demo data was already loaded.")
        print(
            f"\nSign in at {settings.public_url}/ with password {DEMO_PASSWORD!r} as:"
        )
        for account in ACCOUNTS:
            print(f"  {account.email:<40} {account.name} ({account.description})")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> int:
    password = None
    if args.kind == "person":
        password = os.environ.get("TICKMARK_PASSWORD") or getpass.getpass("Password: ")

    async def work(db: Database) -> int:
        async with db.transaction() as conn:
            user = await accounts.create_user(
                conn,
                email=args.email,
                display_name=args.name,
                password=password,
                kind=args.kind,
                time_zone=args.time_zone,
            )
        print(user.id)
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_company_add(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        name = check_name(args.name, "name")
        async with db.transaction() as conn:
            company = await companies.insert(conn, name)
        print(company.id)
        return 0

    return asyncio.run(_with_db(settings, work))


async def _user_by_email(db: Database, email: str) -> users.User:
    async with db.connection() as conn:
        user = await users.by_email(conn, email)
    if user is None:
        raise SystemExit(f"no user with email {email}")
    return user


def cmd_member_add(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        user = await _user_by_email(db, args.email)
        async with db.transaction() as conn:
            if await companies.by_id(conn, args.company) is None:
                raise SystemExit(f"no company {args.company}")
            await companies.add_member(conn, args.company, user.id, args.role)
        print(f"{user.email} is now {args.role} of {args.company}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_member_remove(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        user = await _user_by_email(db, args.email)
        async with db.transaction() as conn:
            removed = await companies.remove_member(conn, args.company, user.id)
        print("removed" if removed else "was not a member")
        return 0 if removed else 1

    return asyncio.run(_with_db(settings, work))


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        user = await _user_by_email(db, args.email)
        expires_at = None
        if args.days is not None:
            expires_at = SystemClock().now() + dt.timedelta(days=args.days)
        async with db.transaction() as conn:
            issued = await accounts.issue_token(
                conn,
                user,
                name=args.name,
                scopes=frozenset(args.scope),
                company_ids=frozenset(args.company) if args.company else None,
                expires_at=expires_at,
            )
        # The secret is printed once and never stored: keep it now.
        print(issued.secret)
        return 0

    return asyncio.run(_with_db(settings, work))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickmark",
        description="Real-time conversations on accounting transactions.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    serve = commands.add_parser("serve", help="run the web server")
    serve.add_argument("--host", help="address to listen on (default: HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT)")
    serve.add_argument(
        "--worker",
        action="store_true",
        help="also send email and webhooks (always on with the embedded database)",
    )
    serve.set_defaults(run=cmd_serve)

    migrate = commands.add_parser(
        "migrate", help="bring the database schema up to date"
    )
    migrate.set_defaults(run=cmd_migrate)

    worker = commands.add_parser(
        "worker", help="send email to people who are away, and webhooks"
    )
    worker.set_defaults(run=cmd_worker)

    reply = commands.add_parser(
        "reply-server", help="take replies by email over SMTP (REPLY_DOMAIN)"
    )
    reply.set_defaults(run=cmd_reply_server)

    demo = commands.add_parser("demo", help="load a demo accounting firm")
    demo.set_defaults(run=cmd_demo)

    user = commands.add_parser("user-add", help="add a person or bot account")
    user.add_argument("email")
    user.add_argument("name", help="display name")
    user.add_argument("--kind", choices=["person", "bot"], default="person")
    user.add_argument("--time-zone", help="IANA zone, e.g. Europe/Paris")
    user.set_defaults(run=cmd_user_add)

    company = commands.add_parser("company-add", help="add a company")
    company.add_argument("name")
    company.set_defaults(run=cmd_company_add)

    member = commands.add_parser("member-add", help="add a user to a company")
    member.add_argument("company", type=uuid.UUID, help="company id")
    member.add_argument("email")
    member.add_argument("role", choices=["accountant", "client"])
    member.set_defaults(run=cmd_member_add)

    unmember = commands.add_parser("member-remove", help="remove a user from a company")
    unmember.add_argument("company", type=uuid.UUID, help="company id")
    unmember.add_argument("email")
    unmember.set_defaults(run=cmd_member_remove)

    token = commands.add_parser("token-create", help="make an API token for a user")
    token.add_argument("email")
    token.add_argument("--name", default="cli", help="what the token is for")
    token.add_argument(
        "--scope",
        action="append",
        choices=[s.value for s in Scope],
        required=True,
        help="repeat for several scopes",
    )
    token.add_argument(
        "--company", action="append", type=uuid.UUID, help="limit to a company; repeat"
    )
    token.add_argument("--days", type=int, help="expire after this many days")
    token.set_defaults(run=cmd_token_create)
    _add_import_command(commands)
    return parser


def _add_import_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    from pathlib import Path

    from server.importer.run import Format

    def currency(value: str) -> str:
        if len(value) != 3 or not value.isascii() or not value.isalpha():
            raise argparse.ArgumentTypeError(
                f"expected a three-letter ISO 4217 code such as USD, got {value!r}"
            )
        return value.upper()

    command = commands.add_parser(
        "import",
        help="import transactions from accounting exports (docs/importing.md)",
    )
    command.add_argument("files", nargs="+", type=Path, metavar="FILE")
    command.add_argument("--company", type=uuid.UUID, required=True, help="company id")
    command.add_argument(
        "--format",
        choices=[f.value for f in Format],
        default=Format.AUTO.value,
        help="csv: QuickBooks Transaction List; qbo-json: QuickBooks Online "
        "API entities; auto (default): by suffix, else by content",
    )
    command.add_argument(
        "--currency",
        type=currency,
        default="USD",
        help="currency of amounts that name none (default: USD)",
    )
    command.set_defaults(run=cmd_import)


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import export files into a company; exit code 1 if any row was refused."""
    from tqdm import tqdm

    from server.app import policy_from
    from server.core.events import NoEvents
    from server.core.services import Services
    from server.errors import NotFound
    from server.importer.rows import RowStatus
    from server.importer.run import Format, import_rows, read_file, summary_lines

    rows = [
        row
        for path in args.files
        for row in read_file(path, Format(args.format), currency=args.currency)
    ]

    async def work(db: Database) -> int:
        async with db.connection() as conn:
            if await companies.by_id(conn, args.company) is None:
                raise NotFound(f"There is no company {args.company}.")
        # No server runs in this process: a note that an amount changed
        # is stored in its thread, and readers see it when they next load
        # it rather than live.
        services = Services(db, SystemClock(), NoEvents(), policy_from(settings))
        with tqdm(
            total=len(rows),
            desc="importing",
            unit="row",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
        ) as bar:
            results = await import_rows(
                services, args.company, rows, on_progress=bar.update
            )
        for line in summary_lines(results):
            print(line)
        refused = any(r.status is RowStatus.REFUSED for r in results)
        return 1 if refused else 0

    return asyncio.run(_with_db(settings, work))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"tickmark: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        code: int = args.run(settings, args)
    except TickmarkError as exc:
        print(f"tickmark: {exc.message}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
