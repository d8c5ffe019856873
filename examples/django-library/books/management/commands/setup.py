"""`manage.py setup`: migrate the database, then load the initial books once.

compose.toml's one-shot `migrate` service runs it before `web` starts. Capsule's images
have no shell to chain `migrate && loaddata`, and `loaddata` alone would write the
fixture's rows over the books users have edited every time the project comes up, so
this command loads the fixture only into a library that has no books yet.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from books.models import Book


class Command(BaseCommand):
    help = 'Apply the migrations, then load the books fixture if the library is empty.'

    def add_arguments(self, parser):
        parser.add_argument(
            '--fixture', default='books',
            help='The fixture to load into an empty library (default: books).',
        )

    def handle(self, *args, **options):
        call_command('migrate', interactive=False, verbosity=options['verbosity'])
        count = Book.objects.count()
        if count:
            self.stdout.write(
                f'The library already has {count} book(s): the fixture is not loaded again.'
            )
            return
        call_command('loaddata', options['fixture'], verbosity=options['verbosity'])
        self.stdout.write(self.style.SUCCESS(
            f'Loaded {Book.objects.count()} book(s) from the {options["fixture"]} fixture.'
        ))
