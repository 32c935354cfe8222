"""Malformed rule files: (id, file text). Expected problems live in test_malformed.py."""

from __future__ import annotations

GOOD = """rules:
  - name: stop-loss
    when: balance <= stop_loss
    action: close
    reason: stop_loss
"""

CASES: dict[str, str] = {
    "empty": "",
    "only-comments": "# nothing here\n\n# still nothing\n",
    "yaml-syntax-unclosed-quote": 'rules:\n  - name: "stop-loss\n    action: close\n',
    "yaml-syntax-bad-indent": "rules:\n  - name: a\n   when: balance <= 1\n    action: close\n",
    "top-level-list": "- name: a\n  when: balance <= 1\n",
    "unknown-top-level-key": "rule:\n  - name: a\n",
    "rules-not-list": "rules: stop-loss\n",
    "rule-not-mapping": "rules:\n  - stop-loss\n",
    "missing-name": "rules:\n  - when: balance <= 1\n    action: sweep\n",
    "missing-when": "rules:\n  - name: a\n    action: sweep\n",
    "missing-action": "rules:\n  - name: a\n    when: balance <= 1\n",
    "unknown-rule-key": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: sweep\n    priorty: 5\n"
    ),
    "unknown-action": "rules:\n  - name: a\n    when: balance <= 1\n    action: clsoe\n",
    "bad-reason": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: close\n    reason: stoploss\n"
    ),
    "close-without-reason": "rules:\n  - name: a\n    when: balance <= 1\n    action: close\n",
    "sweep-with-reason": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: sweep\n    reason: idle\n"
    ),
    "duplicate-name": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: sweep\n"
        "  - name: a\n    when: balance <= 2\n    action: sweep\n"
    ),
    "priority-not-int": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: sweep\n    priority: high\n"
    ),
    "enabled-not-bool": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: sweep\n    enabled: yes\n"
    ),
    "bad-name": "rules:\n  - name: stop loss!\n    when: balance <= 1\n    action: sweep\n",
    "unknown-field": "rules:\n  - name: a\n    when: balanse <= stop_loss\n    action: sweep\n",
    "amount-vs-time": "rules:\n  - name: a\n    when: balance <= expiry\n    action: sweep\n",
    "bad-duration": (
        "rules:\n  - name: a\n    when: now >= last_activity + 24x\n    action: sweep\n"
    ),
    "syntax-missing-operand": "rules:\n  - name: a\n    when: balance <=\n    action: sweep\n",
    "unclosed-paren": (
        "rules:\n  - name: a\n    when: (balance <= 1 or spent > 2\n    action: sweep\n"
    ),
    "decimal-base-units": "rules:\n  - name: a\n    when: balance <= 1.5\n    action: sweep\n",
    "unquoted-text": "rules:\n  - name: a\n    when: status == active\n    action: sweep\n",
    "unknown-status": 'rules:\n  - name: a\n    when: status == "activ"\n    action: sweep\n',
    "not-a-condition": "rules:\n  - name: a\n    when: balance + 1\n    action: sweep\n",
    "order-on-text": "rules:\n  - name: a\n    when: owner < operator\n    action: sweep\n",
    "percent-of-time": ("rules:\n  - name: a\n    when: now >= 50% of expiry\n    action: sweep\n"),
    "time-plus-time": (
        "rules:\n  - name: a\n    when: now >= expiry + created_at\n    action: sweep\n"
    ),
    "plain-number-as-duration": (
        "rules:\n  - name: a\n    when: now >= last_activity + 86400\n    action: sweep\n"
    ),
    "chained-comparison": "rules:\n  - name: a\n    when: 1 < balance < 5\n    action: sweep\n",
    "c-style-and": (
        "rules:\n  - name: a\n    when: balance <= 1 && spent > 0\n    action: sweep\n"
    ),
    "single-equals": "rules:\n  - name: a\n    when: balance = 1\n    action: sweep\n",
    "unterminated-string": (
        "rules:\n  - name: a\n    when: 'status == \"active'\n    action: sweep\n"
    ),
    "when-not-text": "rules:\n  - name: a\n    when: 5\n    action: sweep\n",
    "empty-when": "rules:\n  - name: a\n    when: ''\n    action: sweep\n",
    "scope-unknown-key": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: sweep\n"
        "    scope: {polcy: berzerker}\n"
    ),
    "scope-policy-wrong-type": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: sweep\n    scope: {policy: 5}\n"
    ),
    "replaces-unknown": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: sweep\n"
        "    scope: {policy: x}\n    replaces: stop-los\n"
        "  - name: stop-loss\n    when: balance <= 1\n    action: sweep\n"
    ),
    "replaces-without-scope": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: sweep\n    replaces: b\n"
    ),
    "duplicate-key": (
        "rules:\n  - name: a\n    name: b\n    when: balance <= 1\n    action: sweep\n"
    ),
    "multiline-when-error": (
        'rules:\n  - name: a\n    when: >-\n      status == "active" and\n'
        "      balance <= expiry\n    action: sweep\n"
    ),
    "several-errors-at-once": (
        "rules:\n  - name: a\n    when: balance <= expiry\n    action: clos\n    priority: x\n"
    ),
    # A duplicate is reported even when a rule with that name has errors of its own.
    "duplicate-name-first-broken": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: clsoe\n"
        "  - name: a\n    when: balance <= 2\n    action: sweep\n"
    ),
    "duplicate-name-both-broken": (
        "rules:\n  - name: a\n    when: balance <= expiry\n    action: sweep\n"
        "  - name: a\n    when: balance <= 2\n    action: close\n"
    ),
    # Replacing a rule that is itself broken: only that rule's own error, no "unknown rule".
    "replaces-broken-rule": (
        "rules:\n  - name: a\n    when: balance <= 1\n    action: clsoe\n"
        "  - name: b\n    scope: {policy: x}\n    replaces: a\n    when: balance <= 2\n"
        "    action: sweep\n"
    ),
    "control-character": "rules:\n  - name: a\x00\n    when: balance <= 1\n    action: sweep\n",
    "object-tag": (
        "rules:\n  - name: !!python/object/apply:os.system [ls]\n"
        "    when: balance <= 1\n    action: sweep\n"
    ),
    "alias-bomb": "a: &a [x, x]\nrules: [" + ", ".join(["*a"] * 101) + "]\n",
}
