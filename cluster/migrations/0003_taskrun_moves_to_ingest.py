# TaskRun (the record of every run) moves to the ingest app, which writes it (issue #11,
# one-way layers). The table is kept; ingest's 0004 takes the model over and renames it.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('cluster', '0002_job_ticks'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='TaskRun')],
            database_operations=[],
        ),
    ]
