from django.apps import AppConfig


class ModerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "moderation"

    def ready(self) -> None:
        # Gifts' live feed and gift lists ask this app which messages to leave out, and
        # open feeds get its pinned / unpinned events (gifts never imports moderation).
        from gifts import feed_hooks
        from moderation.feed import PinWatcher
        from moderation.selectors import veiled_message_ids

        feed_hooks.register_veil(veiled_message_ids)
        feed_hooks.register_watcher(PinWatcher)
