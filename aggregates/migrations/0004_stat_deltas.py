# Stats kept up by deltas: triggers append what each statement did to each item
# (aggregates_statdelta) instead of upserting one "dirty" row per item, which made
# concurrent loads of overlapping items wait on, and deadlock with, each other.

import importlib

from django.db import migrations, models

_0002 = importlib.import_module('aggregates.migrations.0002_dirty_items')

# One function per event. Each appends one row per item the statement touched: the
# sum and count of values added minus removed, and the extremes of each side
# (the pass needs them to know whether an item's min or max may have gone).
LOG = """
CREATE FUNCTION aggregates_log_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO aggregates_statdelta (item_id, total, count, added_min, added_max)
    SELECT item_id, sum(value), count(*), min(value), max(value)
    FROM new_rows GROUP BY item_id;
    RETURN NULL;
END $$;
CREATE FUNCTION aggregates_log_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO aggregates_statdelta (item_id, total, count, removed_min, removed_max)
    SELECT item_id, -sum(value), -count(*), min(value), max(value)
    FROM old_rows GROUP BY item_id;
    RETURN NULL;
END $$;
CREATE FUNCTION aggregates_log_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only rows whose item or value changed; a touched observed_at changes no stats.
    INSERT INTO aggregates_statdelta
        (item_id, total, count, added_min, added_max, removed_min, removed_max)
    SELECT item_id, sum(total), sum(count), min(added), max(added), min(removed),
           max(removed)
    FROM (
        SELECT n.item_id, n.value AS total, 1 AS count, n.value AS added,
               NULL::float8 AS removed
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.item_id, o.value) IS DISTINCT FROM (n.item_id, n.value)
        UNION ALL
        SELECT o.item_id, -o.value, -1, NULL, o.value
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.item_id, o.value) IS DISTINCT FROM (n.item_id, n.value)
    ) changed
    GROUP BY item_id;
    RETURN NULL;
END $$;
-- TRUNCATE has no transition table: forget the stats, so the next pass is a full one.
CREATE FUNCTION aggregates_forget_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM aggregates_itemstats;
    RETURN NULL;
END $$;
CREATE TRIGGER observation_log_insert AFTER INSERT ON ingest_observation
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aggregates_log_insert();
CREATE TRIGGER observation_log_update AFTER UPDATE ON ingest_observation
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aggregates_log_update();
CREATE TRIGGER observation_log_delete AFTER DELETE ON ingest_observation
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aggregates_log_delete();
CREATE TRIGGER observation_truncate AFTER TRUNCATE ON ingest_observation
    FOR EACH STATEMENT EXECUTE FUNCTION aggregates_forget_stats();
"""

UNLOG = """
DROP TRIGGER observation_log_insert ON ingest_observation;
DROP TRIGGER observation_log_update ON ingest_observation;
DROP TRIGGER observation_log_delete ON ingest_observation;
DROP TRIGGER observation_truncate ON ingest_observation;
DROP FUNCTION aggregates_log_insert();
DROP FUNCTION aggregates_log_delete();
DROP FUNCTION aggregates_log_update();
DROP FUNCTION aggregates_forget_stats();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('aggregates', '0003_item_stats_name'),
    ]

    operations = [
        migrations.RunSQL(_0002.UNMARK, _0002.MARK),
        # Existing stats have no total: drop them, and the next pass is a full one.
        migrations.RunSQL("DELETE FROM aggregates_itemstats", migrations.RunSQL.noop),
        migrations.DeleteModel(
            name='DirtyItem',
        ),
        migrations.AddField(
            model_name='itemstats',
            name='total',
            field=models.FloatField(default=0.0),
        ),
        migrations.CreateModel(
            name='StatDelta',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('item_id', models.BigIntegerField()),
                ('total', models.FloatField()),
                ('count', models.IntegerField()),
                ('added_min', models.FloatField(null=True)),
                ('added_max', models.FloatField(null=True)),
                ('removed_min', models.FloatField(null=True)),
                ('removed_max', models.FloatField(null=True)),
            ],
        ),
        migrations.RunSQL(LOG, UNLOG),
    ]
