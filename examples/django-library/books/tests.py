from io import StringIO

from django.core.management import call_command
from django.test import TestCase
from django.urls import reverse

from .models import Book


class BookPageTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.book = Book.objects.create(
            title='<Dune>', subtitle='Book one', author='Frank Herbert', isbn='9780441013593',
        )

    def test_str_is_the_title(self):
        self.assertEqual(str(self.book), '<Dune>')

    def test_the_page_lists_the_books_escaped(self):
        response = self.client.get(reverse('home'))
        self.assertEqual(response.status_code, 200)
        self.assertTemplateUsed(response, 'books/book_list.html')
        self.assertContains(response, '&lt;Dune&gt;')
        self.assertContains(response, 'Frank Herbert')
        self.assertNotContains(response, '<Dune>')


class SetupCommandTests(TestCase):
    def run_setup(self):
        out = StringIO()
        call_command('setup', verbosity=0, stdout=out)
        return out.getvalue()

    def test_loads_the_fixture_into_an_empty_library_only(self):
        self.assertIn('Loaded 5 book(s)', self.run_setup())
        Book.objects.filter(pk=1).update(title='Dune (annotated)')
        self.assertIn('already has 5 book(s)', self.run_setup())
        self.assertEqual(Book.objects.get(pk=1).title, 'Dune (annotated)')
