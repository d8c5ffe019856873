from django.contrib import admin

from .models import Book


@admin.register(Book)
class BookAdmin(admin.ModelAdmin):
    list_display = ['title', 'author', 'isbn']
    search_fields = ['title', 'subtitle', 'author', 'isbn']
