from rest_framework import status
from rest_framework.test import APITestCase

from books.models import Book


class BookAPITests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        cls.book = Book.objects.create(
            title='Dune', subtitle='', author='Frank Herbert', isbn='9780441013593',
        )

    def test_list_and_detail(self):
        response = self.client.get('/api/')
        self.assertEqual(response.status_code, status.HTTP_200_OK)
        self.assertEqual(response.json(), [{
            'id': self.book.id, 'title': 'Dune', 'subtitle': '',
            'author': 'Frank Herbert', 'isbn': '9780441013593',
        }])
        response = self.client.get(f'/api/{self.book.id}/')
        self.assertEqual(response.json()['title'], 'Dune')
        self.assertEqual(self.client.get('/api/999/').status_code, status.HTTP_404_NOT_FOUND)

    def test_create_update_delete(self):
        response = self.client.post(
            '/api/', {'title': 'Neuromancer', 'author': 'William Gibson', 'isbn': '9780441569595'},
            format='json',
        )
        self.assertEqual(response.status_code, status.HTTP_201_CREATED)
        path = f"/api/{response.json()['id']}/"
        response = self.client.patch(path, {'subtitle': 'Sprawl, book one'}, format='json')
        self.assertEqual(response.json()['subtitle'], 'Sprawl, book one')
        self.assertEqual(self.client.delete(path).status_code, status.HTTP_204_NO_CONTENT)
        self.assertFalse(Book.objects.filter(isbn='9780441569595').exists())

    def test_bad_input_is_a_400_that_names_the_problem(self):
        response = self.client.post(
            '/api/', '{"title": "Dune",', content_type='application/json',
        )
        self.assertEqual(response.status_code, status.HTTP_400_BAD_REQUEST)
        self.assertTrue(response.json()['detail'].startswith('JSON parse error'))
        response = self.client.post(
            '/api/', {'title': 'Again', 'author': 'x', 'isbn': '9780441013593'}, format='json',
        )
        self.assertEqual(response.status_code, status.HTTP_400_BAD_REQUEST)
        self.assertEqual(response.json(), {'isbn': ['book with this ISBN already exists.']})
