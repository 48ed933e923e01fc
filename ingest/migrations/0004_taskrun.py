# TaskRun moves here from the cluster app (see cluster 0003): the model is taken over
# as it is in the database, then its table gets this app's name.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ingest', '0003_observation_item_value'),
        ('cluster', '0003_taskrun_moves_to_ingest'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='TaskRun',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('node', models.CharField(max_length=200)),
                        ('job', models.CharField(max_length=200)),
                        ('started_at', models.DateTimeField(db_index=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('status', models.CharField(choices=[('running', 'Running'), ('ok', 'Ok'), ('unchanged', 'Unchanged'), ('failed', 'Failed'), ('skipped', 'Skipped')], default='running', max_length=20)),
                        ('rows_in', models.IntegerField(default=0)),
                        ('rows_out', models.IntegerField(default=0)),
                        ('rows_rejected', models.IntegerField(default=0)),
                        ('bytes', models.BigIntegerField(default=0)),
                        ('attempts', models.IntegerField(default=0)),
                        ('error', models.TextField(blank=True, default='')),
                        ('rejections', models.JSONField(blank=True, default=list)),
                        ('source', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='runs', to='ingest.source')),
                    ],
                    options={
                        'db_table': 'cluster_taskrun',
                        'indexes': [models.Index(fields=['source', '-started_at'], name='taskrun_source_idx')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name='taskrun', table=None),
        migrations.RunSQL(
            'ALTER SEQUENCE IF EXISTS cluster_taskrun_id_seq RENAME TO ingest_taskrun_id_seq',
            'ALTER SEQUENCE IF EXISTS ingest_taskrun_id_seq RENAME TO cluster_taskrun_id_seq',
        ),
    ]
