"""Demo data: admin and six colleagues, "Chat - Gerência" with all seven, a smaller room, and
two deals of the example CRM with their rooms (different owners and teams)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from chat.domain import records
from chat.domain.models import Membership, Room
from crm.models import Deal

DEMO_USERS = [
    ("admin", "Admin", "CRM"),
    ("maria", "Maria", "Silva"),
    ("joao", "João", "Souza"),
    ("ana", "Ana", "Oliveira"),
    ("carlos", "Carlos", "Pereira"),
    ("fernanda", "Fernanda", "Costa"),
    ("pedro", "Pedro", "Almeida"),
]
DEMO_ROOMS = [
    ("Chat - Gerência", Room.Type.COMMUNITY, [name for name, _, _ in DEMO_USERS]),
    ("Chat - Vendas", Room.Type.GROUP, ["admin", "maria", "joao"]),
]
# (title, owner, team, stage): each deal's room holds its owner, its team and admin (superuser).
DEMO_DEALS = [
    ("Implantação ACME", "maria", ["joao"], Deal.Stage.PROPOSAL),
    ("Renovação Beta Ltda", "carlos", ["ana"], Deal.Stage.NEGOTIATION),
]


class Command(BaseCommand):
    help = "Create the demo users and rooms (password from DEMO_PASSWORD). Safe to run again."

    @transaction.atomic
    def handle(self, *args, **options):
        users = {name: self.ensure_user(name, first, last) for name, first, last in DEMO_USERS}
        for room_name, room_type, member_names in DEMO_ROOMS:
            room, created = Room.objects.get_or_create(
                name=room_name, type=room_type, defaults={"created_by": users["admin"]}
            )
            for name in member_names:
                role = Membership.Role.ADMIN if name == "admin" else Membership.Role.MEMBER
                Membership.objects.get_or_create(
                    room=room, user=users[name], defaults={"role": role}
                )
            self.stdout.write(f"{'created' if created else 'exists '} room {room.name} ({room.pk})")
        for title, owner, team, stage in DEMO_DEALS:
            deal, created = Deal.objects.get_or_create(
                title=title, defaults={"owner": users[owner], "stage": stage}
            )
            if created:
                deal.team.set([users[name] for name in team])
            room = records.room_for_record(deal)
            self.stdout.write(
                f"{'created' if created else 'exists '} deal {title} (crm.deal {deal.pk}),"
                f" room {room.pk}"
            )

    def ensure_user(self, username: str, first_name: str, last_name: str):
        user, created = get_user_model().objects.get_or_create(
            username=username,
            defaults={
                "first_name": first_name,
                "last_name": last_name,
                "email": f"{username}@example.com",
                "is_staff": username == "admin",
                "is_superuser": username == "admin",
            },
        )
        if created:
            user.set_password(settings.DEMO_PASSWORD)
            user.save(update_fields=["password"])
        self.stdout.write(f"{'created' if created else 'exists '} user {username}")
        return user
