"""``gift_send_v4``: ``gift_send_v3`` with less PostgreSQL work per gift (issue #15).

Same arguments, reads, rules and their order, the same rows written and the same answers as
v3 (gifts/migrations/0005_gift_send_v3.py, which stays, like v1 and v2, for a rolling
deploy's old code and a rollback). What changed:

- one statement fewer: the creator's webhook endpoints are read with every other read (v3
  read them in a statement of their own after the tally). The statements are otherwise v3's
  (10 per HTTP gift, 8 without an Idempotency-Key). Merging every write into one statement
  of data-modifying CTEs was measured and dropped: it cost more backend CPU per gift than the
  separate statements (BENCHMARKS.md, issue #15);
- indexes: each one is an insert per row per gift. The single-column indexes that a composite
  index already leads with go (gift event sender, creator and goal; tally creator; daily
  spend user; here and in wallets 0017 / accounts 0003), and so does ``gifttally_day_top``
  (creator, day, coins DESC): no query reads it in that order (the leaderboards group by
  sender and sort the sums), and with coins out of every index the tally's upsert becomes a
  HOT update;
- ``gifts_gifttally`` and ``gifts_dailygiftspend`` keep a fifth of each page free
  (``fillfactor``), so their upserts' updates stay on the page (HOT: no index entry).

The index drops run ``CONCURRENTLY`` (no lock on the tables a rolling deploy is writing to),
hence a non-atomic migration; the foreign keys are left as they are.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

GIFT_SEND_V4 = """
CREATE OR REPLACE FUNCTION gift_send_v4(
    p_sender_id bigint,
    p_ledger_key text,
    p_handle text,
    p_slug text,
    p_quantity integer,
    p_live_id text,
    p_video_id text,
    p_message text,
    p_country text,
    p_now timestamptz,
    p_minimum_age integer,
    p_platform_daily_limit bigint,
    p_diamonds_num bigint,
    p_diamonds_den bigint,
    p_http_key text,
    p_request_hash text,
    p_path text,
    p_goal_id bigint
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := (p_now AT TIME ZONE 'UTC')::date;
    v_wallet record;
    v_goal record;
    v_hold boolean := false;
    v_holding_id bigint;
    r record;
    v_record record;
    v_event record;
    v_coins bigint;
    v_diamonds bigint;
    v_limit bigint;
    v_limit_code text;
    v_own_daily bigint;
    v_own_monthly bigint;
    v_spent_id bigint;
    v_issuance_id bigint;
    v_tx_id bigint;
    v_balance bigint;
    v_event_id bigint;
    v_body jsonb;
    v_endpoint_ids bigint[];
    v_webhook_event_id bigint;
BEGIN
    -- 1. A stored HTTP answer is replayed before anything else.
    IF p_http_key IS NOT NULL THEN
        SELECT request_hash, response_status, response_body INTO v_record
        FROM accounts_idempotencyrecord WHERE user_id = p_sender_id AND key = p_http_key;
        IF FOUND THEN
            IF v_record.request_hash <> p_request_hash THEN
                RETURN jsonb_build_object('result', 'conflict');
            END IF;
            RETURN jsonb_build_object('result', 'replay', 'status', v_record.response_status,
                                      'body', v_record.response_body);
        END IF;
    END IF;

    -- 2a. The goal, share-locked BEFORE the wallet (goal_settle locks the goal, then the
    -- gifters' wallets): gifts to one goal do not wait for each other, the settlement waits
    -- for the gifts under way, and a gift after it sees the goal closed.
    IF p_goal_id IS NOT NULL THEN
        SELECT id, creator_id, all_or_nothing, status, deadline INTO v_goal
        FROM gifts_goal WHERE id = p_goal_id FOR KEY SHARE;
        v_hold := FOUND AND v_goal.all_or_nothing;
    END IF;

    -- 2. The sender's wallet, locked: one sender's gifts go one at a time from here.
    SELECT id, balance, is_frozen, frozen_reason INTO v_wallet
    FROM wallets_account WHERE kind = 'wallet' AND user_id = p_sender_id FOR UPDATE;

    -- 3. Every other read in one statement.
    SELECT
        gift_age_years_v1(s.date_of_birth, v_today) AS sender_age, s.username AS sender_username,
        c.id AS creator_id, c.handle AS creator_handle, c.user_id AS creator_user_id,
        c.pending_account_id,
        (c.is_active AND cu.is_active
            AND coalesce(gift_age_years_v1(cu.date_of_birth, v_today) >= p_minimum_age, false)
        ) AS creator_can_receive,
        g.id AS gift_id, g.slug AS gift_slug, g.name AS gift_name, g.coins AS gift_coins,
        (g.is_active
            AND (g.available_from IS NULL OR g.available_from <= p_now)
            AND (g.available_until IS NULL OR g.available_until > p_now)
            AND (coalesce(p_country, '') = '' OR jsonb_array_length(g.countries) = 0
                 OR g.countries ? upper(p_country))
        ) AS gift_available,
        e.id AS event_id,
        l.daily_limit, l.daily_limit_next, l.daily_limit_next_at,
        l.monthly_limit, l.monthly_limit_next, l.monthly_limit_next_at,
        (SELECT coins FROM gifts_dailygiftspend
         WHERE user_id = p_sender_id AND day = v_today) AS spent_today,
        (SELECT sum(coins) FROM gifts_dailygiftspend
         WHERE user_id = p_sender_id AND day >= date_trunc('month', v_today)::date
           AND day <= v_today) AS spent_month,
        (SELECT id FROM wallets_account
         WHERE kind = 'coins_spent' AND user_id IS NULL) AS spent_id,
        (SELECT id FROM wallets_account
         WHERE kind = 'diamond_issuance' AND user_id IS NULL) AS issuance_id,
        (SELECT id FROM wallets_account
         WHERE kind = 'goal_holding' AND user_id IS NULL) AS holding_id,
        -- The creator's endpoints that want gift.received (used only if the gift is made).
        (SELECT array_agg(w.id ORDER BY w.id) FROM notifications_webhookendpoint w
         WHERE w.owner_id = c.user_id AND w.enabled
           AND (w.events ? 'gift.received' OR w.events ? 'gift.*')) AS endpoint_ids
    INTO r
    FROM accounts_user s
    LEFT JOIN creators_creator c
        ON c.handle = p_handle AND length(p_handle) BETWEEN 1 AND 30
    LEFT JOIN accounts_user cu ON cu.id = c.user_id
    LEFT JOIN gifts_gift g ON g.slug = p_slug AND length(p_slug) BETWEEN 1 AND 40
    LEFT JOIN wallets_ledgertransaction t ON t.idempotency_key = p_ledger_key
    LEFT JOIN gifts_giftevent e ON e.transaction_id = t.id
    LEFT JOIN wallets_spendinglimits l ON l.user_id = p_sender_id
    WHERE s.id = p_sender_id;

    IF NOT FOUND THEN
        RAISE EXCEPTION 'gift_send_v4: no user %', p_sender_id;
    END IF;

    -- 4. A gift already sent with this key is the answer, whatever the rules say now.
    IF r.event_id IS NOT NULL THEN
        SELECT ev.*, coalesce((SELECT balance FROM wallets_account
                               WHERE kind = 'wallet' AND user_id = ev.sender_id), 0)
                     AS wallet_coins
        INTO v_event FROM gifts_giftevent ev WHERE ev.id = r.event_id;
        IF p_http_key IS NULL THEN
            RETURN jsonb_build_object('result', 'existing', 'event', to_jsonb(v_event));
        END IF;
        -- The copy that sent it stored its answer in the same transaction.
        SELECT request_hash, response_status, response_body INTO v_record
        FROM accounts_idempotencyrecord WHERE user_id = p_sender_id AND key = p_http_key;
        IF FOUND THEN
            IF v_record.request_hash <> p_request_hash THEN
                RETURN jsonb_build_object('result', 'conflict');
            END IF;
            RETURN jsonb_build_object('result', 'replay', 'status', v_record.response_status,
                                      'body', v_record.response_body);
        END IF;
        -- Sent through the service with this key, never answered over HTTP: answer it now.
        v_body := jsonb_build_object(
            'id', v_event.id, 'coins_spent', v_event.coins, 'diamonds', v_event.diamonds,
            'goal', v_event.goal_id,
            'wallet', jsonb_build_object('coins', v_event.wallet_coins));
        INSERT INTO accounts_idempotencyrecord
            (user_id, key, request_hash, path, response_status, response_body, created_at)
        VALUES (p_sender_id, p_http_key, p_request_hash, left(p_path, 255), 201, v_body, p_now)
        ON CONFLICT DO NOTHING;
        RETURN jsonb_build_object('result', 'created', 'status', 201, 'body', v_body);
    END IF;

    -- Every refusal before any write, in the Python reference's order.
    IF coalesce(r.sender_age < p_minimum_age, true) THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'age_restricted');
    END IF;
    IF r.creator_id IS NULL THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'creator_not_found');
    END IF;
    IF r.creator_user_id = p_sender_id THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'self_gift');
    END IF;
    IF NOT r.creator_can_receive OR r.pending_account_id IS NULL THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'creator_cannot_receive');
    END IF;
    IF r.gift_id IS NULL THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'gift_not_found');
    END IF;
    IF NOT r.gift_available THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'gift_unavailable');
    END IF;
    v_coins := r.gift_coins::bigint * p_quantity;
    v_diamonds := v_coins * p_diamonds_num / p_diamonds_den;
    IF v_coins > p_platform_daily_limit THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'daily_limit_exceeded');
    END IF;
    IF v_wallet.id IS NULL THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'insufficient_funds');
    END IF;
    IF v_wallet.is_frozen THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'wallet_frozen',
                                  'reason', v_wallet.frozen_reason);
    END IF;
    IF p_goal_id IS NOT NULL THEN
        IF v_goal.id IS NULL OR v_goal.creator_id <> r.creator_id THEN
            RETURN jsonb_build_object('result', 'refused', 'code', 'goal_not_found');
        END IF;
        IF v_goal.status <> 'open' OR v_goal.deadline <= p_now THEN
            RETURN jsonb_build_object('result', 'refused', 'code', 'goal_closed');
        END IF;
    END IF;
    IF v_wallet.balance < v_coins THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'insufficient_funds');
    END IF;
    -- The sender's own limits in force now (a raise applies once its time has come).
    v_own_daily := CASE WHEN r.daily_limit_next_at IS NOT NULL AND r.daily_limit_next_at <= p_now
                        THEN r.daily_limit_next ELSE r.daily_limit END;
    v_own_monthly := CASE WHEN r.monthly_limit_next_at IS NOT NULL
                               AND r.monthly_limit_next_at <= p_now
                          THEN r.monthly_limit_next ELSE r.monthly_limit END;
    v_limit := p_platform_daily_limit;
    v_limit_code := 'daily_limit_exceeded';
    IF v_own_daily IS NOT NULL AND v_own_daily < v_limit THEN
        v_limit := v_own_daily;
        v_limit_code := 'spending_limit_exceeded';
    END IF;
    IF coalesce(r.spent_today, 0) + v_coins > v_limit THEN
        RETURN jsonb_build_object('result', 'refused', 'code', v_limit_code,
                                  'period', 'daily', 'limit', v_limit);
    END IF;
    IF v_own_monthly IS NOT NULL AND coalesce(r.spent_month, 0) + v_coins > v_own_monthly THEN
        RETURN jsonb_build_object('result', 'refused', 'code', 'spending_limit_exceeded',
                                  'period', 'monthly', 'limit', v_own_monthly);
    END IF;

    -- 5. Writes. The platform accounts exist after the first gift ever.
    v_spent_id := r.spent_id;
    IF v_spent_id IS NULL THEN
        INSERT INTO wallets_account
            (kind, unit, user_id, balance, is_hot, checkpoint_at, is_frozen, frozen_reason,
             created_at)
        VALUES ('coins_spent', 'COIN', NULL, 0, true, NULL, false, '', p_now)
        ON CONFLICT DO NOTHING;
        SELECT id INTO v_spent_id FROM wallets_account
        WHERE kind = 'coins_spent' AND user_id IS NULL;
    END IF;
    v_issuance_id := r.issuance_id;
    IF v_issuance_id IS NULL THEN
        INSERT INTO wallets_account
            (kind, unit, user_id, balance, is_hot, checkpoint_at, is_frozen, frozen_reason,
             created_at)
        VALUES ('diamond_issuance', 'DIAMOND', NULL, 0, true, NULL, false, '', p_now)
        ON CONFLICT DO NOTHING;
        SELECT id INTO v_issuance_id FROM wallets_account
        WHERE kind = 'diamond_issuance' AND user_id IS NULL;
    END IF;

    v_holding_id := r.holding_id;
    IF v_hold AND v_holding_id IS NULL THEN
        INSERT INTO wallets_account
            (kind, unit, user_id, balance, is_hot, checkpoint_at, is_frozen, frozen_reason,
             created_at)
        VALUES ('goal_holding', 'COIN', NULL, 0, true, NULL, false, '', p_now)
        ON CONFLICT DO NOTHING;
        SELECT id INTO v_holding_id FROM wallets_account
        WHERE kind = 'goal_holding' AND user_id IS NULL;
    END IF;

    INSERT INTO wallets_ledgertransaction
        (kind, idempotency_key, actor_id, memo, reference, reverses_id, created_at)
    VALUES ('gift', p_ledger_key, p_sender_id,
            left(p_quantity || ' x ' || r.gift_name || ' to @' || r.creator_handle, 500),
            left('creator:' || r.creator_id, 100), NULL, p_now)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_tx_id;
    IF v_tx_id IS NULL THEN
        -- The key names another kind of transaction: never spend it twice.
        RETURN jsonb_build_object('result', 'refused', 'code', 'client_key_used');
    END IF;

    UPDATE wallets_account SET balance = balance - v_coins
    WHERE id = v_wallet.id AND balance - v_coins >= 0
    RETURNING balance INTO v_balance;
    IF v_balance IS NULL THEN
        RAISE EXCEPTION 'gift_send_v4: wallet % changed under its lock', v_wallet.id;
    END IF;

    IF v_hold THEN
        -- All-or-nothing: the coins are held; diamonds only if the goal is met (goal_settle).
        INSERT INTO wallets_entry (transaction_id, account_id, amount, balance_after, created_at)
        SELECT v_tx_id, v.account_id, v.amount,
               CASE WHEN v.account_id = v_wallet.id THEN v_balance END, p_now
        FROM (VALUES (v_wallet.id, -v_coins), (v_holding_id, v_coins)) AS v(account_id, amount)
        WHERE v.amount <> 0
        ORDER BY v.account_id;
    ELSE
        INSERT INTO wallets_entry (transaction_id, account_id, amount, balance_after, created_at)
        SELECT v_tx_id, v.account_id, v.amount,
               CASE WHEN v.account_id = v_wallet.id THEN v_balance END, p_now
        FROM (VALUES (v_wallet.id, -v_coins), (v_spent_id, v_coins),
                     (v_issuance_id, -v_diamonds), (r.pending_account_id, v_diamonds))
             AS v(account_id, amount)
        WHERE v.amount <> 0
        ORDER BY v.account_id;
    END IF;

    INSERT INTO gifts_dailygiftspend (user_id, day, coins) VALUES (p_sender_id, v_today, v_coins)
    ON CONFLICT (user_id, day) DO UPDATE SET coins = gifts_dailygiftspend.coins + excluded.coins;

    INSERT INTO gifts_giftevent
        (sender_id, creator_id, gift_id, quantity, coins, diamonds, live_id, video_id, message,
         goal_id, transaction_id, created_at)
    VALUES (p_sender_id, r.creator_id, r.gift_id, p_quantity, v_coins, v_diamonds, p_live_id,
            p_video_id, p_message, p_goal_id, v_tx_id, p_now)
    RETURNING id INTO v_event_id;

    INSERT INTO gifts_gifttally (creator_id, sender_id, day, coins, diamonds, gifts)
    VALUES (r.creator_id, p_sender_id, v_today, v_coins, v_diamonds, 1)
    ON CONFLICT (creator_id, day, sender_id) DO UPDATE SET
        coins = gifts_gifttally.coins + excluded.coins,
        diamonds = gifts_gifttally.diamonds + excluded.diamonds,
        gifts = gifts_gifttally.gifts + 1;

    -- 6. gift.received for the creator's apps (notifications.webhooks.webhook_event_emit,
    -- the Python reference's call): one event, keyed by the gift, and one pending delivery
    -- per enabled endpoint that wants it (the exact name or "gift.*", read with the rest
    -- above); nothing without one.
    v_endpoint_ids := r.endpoint_ids;
    IF v_endpoint_ids IS NOT NULL THEN
        INSERT INTO notifications_webhookevent (public_id, key, owner_id, type, data, created_at)
        VALUES ('evt_' || left(md5(gen_random_uuid()::text), 24), 'gift.received:' || v_event_id,
                r.creator_user_id, 'gift.received',
                jsonb_build_object(
                    'id', v_event_id, 'sender', r.sender_username, 'gift', r.gift_slug,
                    'quantity', p_quantity, 'coins', v_coins, 'diamonds', v_diamonds,
                    'live_id', p_live_id, 'video_id', p_video_id, 'message', p_message,
                    'goal', p_goal_id),
                p_now)
        ON CONFLICT (key) DO NOTHING
        RETURNING id INTO v_webhook_event_id;
        IF v_webhook_event_id IS NOT NULL THEN
            INSERT INTO notifications_webhookdelivery
                (endpoint_id, event_id, status, attempts, next_attempt_at, last_status_code,
                 last_error, created_at, delivered_at)
            SELECT e.id, v_webhook_event_id, 'pending', 0, p_now, NULL, '', p_now, NULL
            FROM unnest(v_endpoint_ids) AS e(id)
            ON CONFLICT DO NOTHING;
        ELSE
            v_endpoint_ids := NULL;
        END IF;
    END IF;

    v_body := jsonb_build_object('id', v_event_id, 'coins_spent', v_coins,
                                 'diamonds', v_diamonds, 'goal', p_goal_id,
                                 'wallet', jsonb_build_object('coins', v_balance));
    IF p_http_key IS NOT NULL THEN
        INSERT INTO accounts_idempotencyrecord
            (user_id, key, request_hash, path, response_status, response_body, created_at)
        VALUES (p_sender_id, p_http_key, p_request_hash, left(p_path, 255), 201, v_body, p_now)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            -- A refused copy of this request (it does not queue on the wallet) stored its
            -- answer meanwhile: undo everything; the caller replays that answer.
            RAISE EXCEPTION 'gift_send_v4: idempotency key % answered meanwhile', p_http_key
                USING ERRCODE = 'AP409';
        END IF;
        RETURN jsonb_build_object('result', 'created', 'status', 201, 'body', v_body,
                                  'webhook_endpoints', to_jsonb(v_endpoint_ids));
    END IF;
    RETURN jsonb_build_object(
        'result', 'created', 'webhook_endpoints', to_jsonb(v_endpoint_ids),
        'event', jsonb_build_object(
            'id', v_event_id, 'sender_id', p_sender_id, 'creator_id', r.creator_id,
            'gift_id', r.gift_id, 'quantity', p_quantity, 'coins', v_coins,
            'diamonds', v_diamonds, 'live_id', p_live_id, 'video_id', p_video_id,
            'message', p_message, 'goal_id', p_goal_id, 'transaction_id', v_tx_id,
            'created_at', p_now,
            'wallet_coins', v_balance));
END;
$$;
"""

ARGS = (
    "bigint, text, text, text, integer, text, text, text, text, timestamptz, integer, bigint, "
    "bigint, bigint, text, text, text, bigint"
)

DROPPED = [  # (table, index, its columns): what the backwards migration builds again
    ("gifts_giftevent", "gifts_giftevent_sender_id_37624322", "sender_id"),
    ("gifts_giftevent", "gifts_giftevent_creator_id_cb0d384c", "creator_id"),
    ("gifts_giftevent", "gifts_giftevent_goal_id_0ef7392f", "goal_id"),
    ("gifts_gifttally", "gifts_gifttally_creator_id_8d7d08b4", "creator_id"),
    ("gifts_gifttally", "gifttally_day_top", "creator_id, day, coins DESC"),
    ("gifts_dailygiftspend", "gifts_dailygiftspend_user_id_71c0f931", "user_id"),
]
HOT_TABLES = ("gifts_gifttally", "gifts_dailygiftspend")


def forwards(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for _table, index, _columns in DROPPED:
        schema_editor.execute(f"DROP INDEX {'CONCURRENTLY' if postgres else ''} IF EXISTS {index}")
    if not postgres:
        return  # SQLite (make run) sends gifts with the Python reference.
    for table in HOT_TABLES:
        schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = 80)")
    schema_editor.execute(GIFT_SEND_V4, params=None)


def backwards(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for table, index, columns in DROPPED:
        include = " INCLUDE (sender_id)" if index == "gifttally_day_top" and postgres else ""
        schema_editor.execute(
            f"CREATE INDEX {'CONCURRENTLY' if postgres else ''} IF NOT EXISTS {index} "
            f"ON {table} ({columns}){include}"
        )
    if not postgres:
        return
    for table in HOT_TABLES:
        schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS gift_send_v4({ARGS})")


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY

    dependencies = [
        ("creators", "0003_live_sessions"),
        ("gifts", "0005_gift_send_v3"),
        ("accounts", "0003_idempotencyrecord_user_no_own_index"),
        ("wallets", "0017_gift_path_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="gifttally", name="gifttally_day_top"),
                migrations.AlterField(
                    model_name="dailygiftspend",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="giftevent",
                    name="creator",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="gift_events",
                        to="creators.creator",
                    ),
                ),
                migrations.AlterField(
                    model_name="giftevent",
                    name="goal",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="gifts",
                        to="gifts.goal",
                    ),
                ),
                migrations.AlterField(
                    model_name="giftevent",
                    name="sender",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="gifts_sent",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="gifttally",
                    name="creator",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="creators.creator",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
