"""Print every chat room in the original system's format."""

from django.core.management.base import BaseCommand
from django.db.models import Count

from chat.domain.models import Room


class Command(BaseCommand):
    help = "List every chat room with its id, name, type and member count."

    def handle(self, *args, **options):
        rooms = Room.objects.annotate(member_count=Count("memberships")).order_by("name", "id")
        blocks = [
            f"ID: {room.pk}\nNome: {room.name}\nTipo: {room.type}\nMembros: {room.member_count}"
            for room in rooms
        ]
        self.stdout.write("=== SALAS DE CHAT DISPONÍVEIS ===")
        self.stdout.write("\n\n".join(blocks) if blocks else "(nenhuma sala)")
