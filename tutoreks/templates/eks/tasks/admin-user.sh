# tutor-contrib-eks: the staff superuser of ADMIN_USER, ADMIN_EMAIL and
# ADMIN_PASSWORD (the admin-edx Secret), created or brought up to date. The three
# values reach the Job as TUTOREKS_ADMIN_* variables from the Secret (secretKeyRef):
# this script holds only references to them, and prints none of them.
TUTOREKS_ADMIN_USER="{{ ADMIN_USER }}" \
TUTOREKS_ADMIN_EMAIL="{{ ADMIN_EMAIL }}" \
TUTOREKS_ADMIN_PASSWORD="{{ ADMIN_PASSWORD }}" \
./manage.py lms shell -c "
import os
from django.contrib.auth import get_user_model
from django.db import transaction
from common.djangoapps.student.models import UserProfile

username = os.environ['TUTOREKS_ADMIN_USER']
email = os.environ['TUTOREKS_ADMIN_EMAIL']
password = os.environ['TUTOREKS_ADMIN_PASSWORD']
with transaction.atomic():
    user, created = get_user_model().objects.get_or_create(
        username=username, defaults={'email': email}
    )
    changed = created
    for field, value in (
        ('email', email), ('is_staff', True), ('is_superuser', True), ('is_active', True)
    ):
        if getattr(user, field) != value:
            setattr(user, field, value)
            changed = True
    # Only a changed password is set again: a new hash would end the admin's sessions.
    if not user.check_password(password):
        user.set_password(password)
        changed = True
    if changed:
        user.save()
    UserProfile.objects.get_or_create(user=user, defaults={'name': username})
print('tutor-contrib-eks: admin user ' + ('created' if created else 'updated' if changed else 'unchanged'))
"
