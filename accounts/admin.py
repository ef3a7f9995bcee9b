from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import IdempotencyRecord, User


@admin.register(User)
class ApplauseUserAdmin(UserAdmin):
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Age", {"fields": ("date_of_birth",)}))
    add_fieldsets = (*UserAdmin.add_fieldsets, ("Age", {"fields": ("date_of_birth",)}))
    list_display = ("username", "email", "date_of_birth", "is_staff", "date_joined")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ("user", "key", "path", "response_status", "created_at")
    search_fields = ("key", "user__username")
    readonly_fields = [f.name for f in IdempotencyRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
