#!/usr/bin/env bash
# Extract the bot's messages from the code into the template (messages.pot) and merge it into every
# language's catalogue (messages.po): new msgids arrive untranslated, removed ones are dropped.
# Then translate the new entries in each .po (docs/bot-service.md, "Localization"); the tests in
# apps/bot/tests/test_i18n.py fail until every msgid has a translation in every language.
set -euo pipefail
cd "$(dirname "$0")/.."
src=apps/bot/src/mcstatbot_bot
locales=$src/locales
languages=(de es pt_BR ru uk tr)
uv run pybabel extract --no-location --sort-output --no-wrap --project mcstatbot --version 1 \
    --msgid-bugs-address "" -o "$locales/messages.pot" "$src"
for language in "${languages[@]}"; do
    if [[ -f $locales/$language/LC_MESSAGES/messages.po ]]; then
        uv run pybabel update --no-wrap --no-fuzzy-matching --ignore-obsolete \
            -i "$locales/messages.pot" -d "$locales" -D messages -l "$language"
    else
        uv run pybabel init --no-wrap -i "$locales/messages.pot" -d "$locales" -D messages -l "$language"
    fi
done
