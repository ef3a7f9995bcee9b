from django.apps import AppConfig


class MembershipsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "memberships"

    def ready(self) -> None:
        # The member badge joins gifts' own (level, top-3) wherever badges show.
        from gifts import badges
        from memberships.selectors import member_badges

        badges.register(member_badges)
