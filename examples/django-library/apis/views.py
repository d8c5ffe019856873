from rest_framework import generics

from books.models import Book

from .serializers import BookSerializer


class BookList(generics.ListCreateAPIView):
    """GET: every book. POST: add one (201, or 400 saying which field is wrong)."""

    queryset = Book.objects.all()
    serializer_class = BookSerializer


class BookDetail(generics.RetrieveUpdateDestroyAPIView):
    """GET, PUT, PATCH and DELETE one book by its id."""

    queryset = Book.objects.all()
    serializer_class = BookSerializer
