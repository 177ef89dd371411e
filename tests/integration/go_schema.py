"""The Go bot's schema (tables with their columns and types, views, functions,
the trigger, and the keys other code names), as data the migration tests check a database against.

Types are written short (``varchar(50)``, ``timestamp``, ``timestamptz``) and compared with
PostgreSQL's ``format_type``. Each group names the migration file that creates it, so a group
whose file does not exist yet (a plugin still being written) is reported as skipped, not failed.
"""
from __future__ import annotations

V = "varchar"

CORE_TABLES = {
    "daz_core_events": [
        ("id", "bigint"), ("event_type", f"{V}(50)"), ("channel_name", f"{V}(100)"),
        ("timestamp", "timestamp"), ("username", f"{V}(100)"), ("message", "text"),
        ("message_time", "bigint"), ("video_id", f"{V}(255)"), ("video_type", f"{V}(50)"),
        ("title", "text"), ("duration", "integer"), ("raw_data", "jsonb"),
        ("created_at", "timestamp"), ("to_user", f"{V}(100)")],
    "daz_chat_log": [
        ("id", "bigint"), ("username", f"{V}(100)"), ("message", "text"), ("user_rank", "integer"),
        ("user_id", f"{V}(100)"), ("channel", f"{V}(100)"), ("timestamp", "timestamp"),
        ("created_at", "timestamp")],
    "daz_user_activity": [
        ("id", "bigint"), ("event_type", f"{V}(50)"), ("username", f"{V}(100)"),
        ("user_rank", "integer"), ("channel", f"{V}(100)"), ("timestamp", "timestamp"),
        ("raw_data", "jsonb"), ("created_at", "timestamp")],
    "daz_plugin_logs": [
        ("id", "bigint"), ("plugin_name", f"{V}(100)"), ("event_type", f"{V}(100)"),
        ("log_data", "jsonb"), ("timestamp", "timestamp"), ("created_at", "timestamp")],
    "daz_private_messages": [
        ("id", "bigint"), ("event_type", f"{V}(50)"), ("from_user", f"{V}(100)"),
        ("to_user", f"{V}(100)"), ("message", "text"), ("channel", f"{V}(100)"),
        ("message_time", "bigint"), ("timestamp", "timestamp"), ("created_at", "timestamp")],
}

GALLERY_TABLES = {
    "daz_gallery_images": [
        ("id", "bigint"), ("username", f"{V}(255)"), ("url", "text"), ("channel", f"{V}(255)"),
        ("posted_at", "timestamptz"), ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
        ("is_active", "boolean"), ("failure_count", "integer"),
        ("first_failure_at", "timestamptz"), ("last_check_at", "timestamptz"),
        ("next_check_at", "timestamptz"), ("pruned_reason", "text"),
        ("original_poster", f"{V}(255)"), ("original_posted_at", "timestamptz"),
        ("most_recent_poster", f"{V}(255)"), ("image_title", "text"),
        ("image_width", "integer"), ("image_height", "integer"), ("file_size", "bigint")],
    "daz_gallery_locks": [
        ("username", f"{V}(255)"), ("channel", f"{V}(255)"), ("is_locked", "boolean"),
        ("locked_at", "timestamptz"), ("locked_by", f"{V}(255)"), ("created_at", "timestamptz"),
        ("updated_at", "timestamptz")],
    "daz_gallery_stats": [
        ("id", "bigint"), ("username", f"{V}(255)"), ("channel", f"{V}(255)"),
        ("total_images", "integer"), ("active_images", "integer"), ("dead_images", "integer"),
        ("images_shared", "integer"), ("last_post_at", "timestamptz"),
        ("gallery_views", "integer"), ("created_at", "timestamptz"),
        ("updated_at", "timestamptz")],
    "daz_gallery_health_log": [
        ("id", "bigint"), ("image_id", "bigint"), ("check_time", "timestamptz"),
        ("status_code", "integer"), ("response_time_ms", "integer"), ("error_message", "text"),
        ("previous_status", "boolean"), ("new_status", "boolean")],
}

RETRY_TABLES = {
    "daz_retry_queue": [
        ("id", "bigint"), ("correlation_id", f"{V}(255)"), ("plugin_name", f"{V}(100)"),
        ("operation_type", f"{V}(100)"), ("event_type", f"{V}(255)"), ("event_data", "jsonb"),
        ("max_retries", "integer"), ("retry_count", "integer"), ("retry_after", "timestamptz"),
        ("created_at", "timestamptz"), ("updated_at", "timestamptz"), ("last_error", "text"),
        ("status", f"{V}(50)"), ("priority", "integer"), ("timeout_seconds", "integer")],
}

STATS_TABLES = {
    "daz_plugin_stats": [
        ("plugin_name", f"{V}(100)"), ("events_processed", "bigint"), ("events_failed", "bigint"),
        ("retries_scheduled", "bigint"), ("retries_succeeded", "bigint"),
        ("retries_failed", "bigint"), ("created_at", "timestamptz"), ("updated_at", "timestamptz")],
}

MEDIATRACKER_TABLES = {
    "daz_mediatracker_plays": [
        ("id", "bigint"), ("channel", f"{V}(255)"), ("media_id", f"{V}(255)"),
        ("media_type", f"{V}(50)"), ("title", "text"), ("duration", "integer"),
        ("started_at", "timestamp"), ("ended_at", "timestamp"), ("queued_by", f"{V}(255)"),
        ("completed", "boolean"), ("metadata", "jsonb")],
    "daz_mediatracker_queue": [
        ("id", "integer"), ("channel", f"{V}(255)"), ("position", "integer"),
        ("uid", f"{V}(255)"), ("media_id", f"{V}(255)"), ("media_type", f"{V}(50)"),
        ("title", "text"), ("duration", "integer"), ("queued_by", f"{V}(255)"),
        ("queued_at", "timestamp")],
    "daz_mediatracker_stats": [
        ("id", "integer"), ("channel", f"{V}(255)"), ("media_id", f"{V}(255)"),
        ("media_type", f"{V}(50)"), ("title", "text"), ("play_count", "bigint"),
        ("total_duration", "bigint"), ("last_played", "timestamp"),
        ("first_played", "timestamp")],
    "daz_mediatracker_library": [
        ("id", "bigint"), ("url", "text"), ("media_id", f"{V}(255)"), ("media_type", f"{V}(50)"),
        ("title", "text"), ("duration", "integer"), ("first_seen", "timestamp"),
        ("last_played", "timestamp"), ("play_count", "integer"), ("added_by", f"{V}(100)"),
        ("channel", f"{V}(100)"), ("metadata", "jsonb"), ("created_at", "timestamp")],
}

ANALYTICS_TABLES = {
    "daz_analytics_hourly": [
        ("id", "integer"), ("channel", f"{V}(255)"), ("hour_start", "timestamp"),
        ("message_count", "bigint"), ("unique_users", "integer"), ("media_plays", "integer"),
        ("commands_used", "integer"), ("metadata", "jsonb"), ("updated_at", "timestamp")],
    "daz_analytics_daily": [
        ("id", "integer"), ("channel", f"{V}(255)"), ("day_date", "date"),
        ("total_messages", "bigint"), ("unique_users", "integer"),
        ("total_media_plays", "integer"), ("peak_users", "integer"), ("active_hours", "integer"),
        ("metadata", "jsonb"), ("updated_at", "timestamp")],
    "daz_analytics_user_stats": [
        ("id", "integer"), ("channel", f"{V}(255)"), ("username", f"{V}(255)"),
        ("total_messages", "bigint"), ("first_seen", "timestamp"), ("last_seen", "timestamp"),
        ("active_days", "integer"), ("metadata", "jsonb")],
}

USERTRACKER_TABLES = {
    "daz_user_tracker_sessions": [
        ("id", "integer"), ("channel", f"{V}(255)"), ("username", f"{V}(255)"),
        ("rank", "integer"), ("joined_at", "timestamp"), ("left_at", "timestamp"),
        ("last_activity", "timestamp"), ("is_active", "boolean")],
    "daz_user_tracker_history": [
        ("id", "bigint"), ("channel", f"{V}(255)"), ("username", f"{V}(255)"),
        ("event_type", f"{V}(50)"), ("timestamp", "timestamp"), ("metadata", "jsonb")],
}

GREETER_TABLES = {
    "daz_greeter_history": [
        ("id", "bigint"), ("channel", f"{V}(255)"), ("username", f"{V}(255)"),
        ("greeting_type", f"{V}(50)"), ("greeting_text", "text"),
        ("greeting_metadata", "jsonb"), ("created_at", "timestamp")],
    "daz_greeter_preferences": [
        ("id", "integer"), ("channel", f"{V}(255)"), ("username", f"{V}(255)"),
        ("opted_out", "boolean"), ("opt_out_reason", f"{V}(255)"), ("created_at", "timestamp"),
        ("updated_at", "timestamp")],
    "daz_greeter_state": [
        ("id", "integer"), ("channel", f"{V}(255)"), ("last_greeting_at", "timestamp"),
        ("last_greeting_user", f"{V}(255)"), ("total_greetings_sent", "integer"),
        ("created_at", "timestamp"), ("updated_at", "timestamp")],
}

TELL_TABLES = {
    "daz_tell_messages": [
        ("id", "integer"), ("channel", f"{V}(255)"), ("from_user", f"{V}(255)"),
        ("to_user", f"{V}(255)"), ("message", "text"), ("is_pm", "boolean"),
        ("created_at", "timestamp"), ("expires_at", "timestamp"), ("delivered", "boolean"),
        ("delivered_at", "timestamp")],
}

OLLAMA_TABLES = {
    "daz_ollama_responses": [
        ("id", "bigint"), ("channel", f"{V}(255)"), ("username", f"{V}(255)"),
        ("message_hash", f"{V}(64)"), ("message_time", "bigint"), ("responded_at", "timestamp"),
        ("response_text", "text")],
    "daz_ollama_rate_limits": [
        ("id", "integer"), ("channel", f"{V}(255)"), ("username", f"{V}(255)"),
        ("last_response_at", "timestamp")],
}

EVENTFILTER_TABLES = {
    "daz_eventfilter_rules": [
        ("id", "integer"), ("event_type", f"{V}(255)"), ("target_plugin", f"{V}(255)"),
        ("conditions", "jsonb"), ("priority", "integer"), ("enabled", "boolean"),
        ("created_at", "timestamp")],
    "daz_eventfilter_commands": [
        ("id", "integer"), ("command", f"{V}(100)"), ("plugin_name", f"{V}(100)"),
        ("is_alias", "boolean"), ("primary_command", f"{V}(100)"), ("min_rank", "integer"),
        ("enabled", "boolean"), ("admin_only", "boolean"), ("description", "text"),
        ("created_at", "timestamp")],
    "daz_eventfilter_history": [
        ("id", "bigint"), ("command", f"{V}(100)"), ("username", f"{V}(255)"),
        ("channel", f"{V}(255)"), ("args", "text[]"), ("executed_at", "timestamp"),
        ("success", "boolean"), ("error_message", "text")],
}

# (group, file that creates it, tables, views, functions, triggers (name, table), named keys)
GROUPS = [
    # Go's idx_events_chatmsg_unique (channel_name, message_time, username) is replaced on
    # purpose by one that adds md5(message): the Go key dropped a second line one sender said in
    # the same millisecond. See plugins/sql/migrations/001_baseline.sql and test_migrations_db.py.
    ("sql core", "sql/001_baseline.sql", CORE_TABLES, {}, [], [],
     ["idx_events_chatmsg_text_unique"]),
    ("gallery", "core/027_gallery_system.sql", GALLERY_TABLES,
     {"daz_gallery_view": ["id", "username", "url", "channel", "posted_at", "image_title",
                           "is_active", "original_poster", "shared_from", "is_locked",
                           "total_images", "active_images"]},
     ["add_gallery_image", "mark_image_for_health_check", "get_images_for_health_check",
      "restore_dead_image", "calculate_next_check_time", "update_dead_image_recovery"], [],
     ["daz_gallery_images_username_url_key", "unique_user_channel_lock",
      "unique_user_channel_stats"]),
    ("retry", "core/025_retry_persistence.sql", RETRY_TABLES,
     {"daz_retry_queue_stats": ["plugin_name", "operation_type", "status", "count",
                                "avg_retry_count", "max_retry_count", "oldest_entry",
                                "latest_update"]},
     ["acquire_retry_batch", "complete_retry", "fail_retry", "cleanup_old_retries",
      "update_retry_stats"], [("update_retry_stats_trigger", "daz_retry_queue")],
     ["daz_retry_queue_correlation_id_key"]),
    ("plugin stats", "core/026_plugin_stats.sql", STATS_TABLES, {}, [], [],
     ["daz_plugin_stats_pkey"]),
    ("mediatracker", "mediatracker/001_baseline.sql", MEDIATRACKER_TABLES, {}, [], [],
     ["daz_mediatracker_library_url_key"]),
    ("analytics", "analytics/001_baseline.sql", ANALYTICS_TABLES, {}, [], [], []),
    ("usertracker", "usertracker/001_baseline.sql", USERTRACKER_TABLES, {},
     ["upsert_user_session"], [], []),
    ("greeter", "greeter/001_baseline.sql", GREETER_TABLES, {}, [], [],
     ["daz_greeter_state_channel_key"]),
    # Go's idx_tell_pending_unique (one pending tell per recipient) is dropped on purpose by the
    # tell plugin, which allows several; see plugins/tell/migrations/001_baseline.sql.
    ("tell", "tell/001_baseline.sql", TELL_TABLES, {}, [], [], []),
    ("ollama", "core/031_ollama_responses.sql", OLLAMA_TABLES, {}, [], [], []),
    ("eventfilter", "eventfilter/001_baseline.sql", EVENTFILTER_TABLES, {}, [], [],
     ["daz_eventfilter_commands_command_key"]),
]

_SHORT = {"timestamp": "timestamp without time zone", "timestamptz": "timestamp with time zone",
          "text[]": "text[]"}


def full_type(short: str) -> str:
    if short.startswith("varchar("):
        return "character varying" + short[len("varchar"):]
    return _SHORT.get(short, short)


async def columns(conn, relation: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type"
        " FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0"
        " AND NOT a.attisdropped", "public." + relation)
    return {r["attname"]: r["type"] for r in rows}


async def problems(conn, group: tuple) -> list[str]:
    """Everything in one documented group that the database lacks or has differently."""
    _name, _file, tables, views, functions, triggers, keys = group
    out = []
    for table, expected in tables.items():
        have = await columns(conn, table)
        if not have:
            out.append(f"table {table} is missing")
            continue
        for column, short in expected:
            if column not in have:
                out.append(f"{table}.{column} is missing")
            elif have[column] != full_type(short):
                out.append(f"{table}.{column} is {have[column]}, documented {full_type(short)}")
    for view, expected in views.items():
        kind = await conn.fetchval("SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)",
                                   "public." + view)
        if kind != "v":
            out.append(f"view {view} is missing")
            continue
        have = await columns(conn, view)
        out += [f"view {view} has no column {c}" for c in expected if c not in have]
    for function in functions:
        if not await conn.fetchval(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'public' AND p.proname = $1", function):
            out.append(f"function {function} is missing")
    for trigger, table in triggers:
        if not await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname = $1"
                                   " AND tgrelid = to_regclass($2)", trigger, "public." + table):
            out.append(f"trigger {trigger} on {table} is missing")
    for key in keys:
        found = await conn.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
            " WHERE c.relname = $1 AND i.indisunique", key)
        if not found:
            out.append(f"unique index/constraint {key} is missing")
    return out
