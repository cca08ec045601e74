"""Write everything the chat holds of a user as JSON (a GDPR access request):
chat.domain.retention.user_export, in the format docs/protocol.md describes ("Export of a
user's data"). Written as it is read: a user with a million messages is never in memory."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import BaseCommand
from django.core.serializers.json import DjangoJSONEncoder

from chat.domain.attachments import attachment_file_open, safe_name
from chat.domain.refusals import AttachmentNotFound
from chat.domain.retention import user_export
from chat.management.user_reference import user_of


class Command(BaseCommand):
    help = "Export a user's chat messages, reactions, attachments and more as JSON (GDPR)."

    def add_arguments(self, parser):
        parser.add_argument("user", help="username, or the account's id")
        parser.add_argument("--output", help="file to write (default: standard output)")
        parser.add_argument(
            "--include-files",
            metavar="DIR",
            help="also copy the user's uploaded files into DIR (named <id>-<name>)",
        )

    def handle(self, *args, user, output=None, include_files=None, **options):
        account = user_of(user)
        copy_file = None if include_files is None else self._copier(Path(include_files))
        document = user_export(account, copy_file=copy_file)
        if output is None:
            json_write(lambda text: self.stdout.write(text, ending=""), document)
            return
        with open(output, "w", encoding="utf-8") as out:
            json_write(out.write, document)
        self.stderr.write(f"exported user {account.pk} to {output}")

    def _copier(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)

        def copy(attachment) -> str | None:
            target = folder / f"{attachment.pk}-{safe_name(attachment.name)}"  # no paths, ever
            try:
                with attachment_file_open(attachment) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
            except AttachmentNotFound:  # the storage lost it: said, not fatal
                self.stderr.write(f"attachment {attachment.pk}: its file is gone")
                return None
            return target.name

        return copy


def _dumps(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def json_write(write, document: dict) -> None:
    """`document` as one JSON object through `write`, its iterators as arrays written item
    by item."""
    write("{")
    for index, (key, value) in enumerate(document.items()):
        write(("," if index else "") + "\n" + _dumps(key) + ": ")
        if isinstance(value, Iterator):
            write("[")
            for number, item in enumerate(value):
                write(("," if number else "") + "\n  " + _dumps(item))
            write("\n]")
        else:
            write(_dumps(value))
    write("\n}\n")
