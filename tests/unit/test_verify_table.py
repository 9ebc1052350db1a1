"""The verification table fits a terminal, and every run's reports have their own files
(issue 14 section 4)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections'))
from ansible_collections.k8slab.podnet.plugins.plugin_utils import verify as v  # noqa: E402

ROWS = [
    dict(name='path node-2/client-2 -> node-1/httpd', kind='path', source='node-2/client-2',
         target='node-1/httpd', address='10.244.1.2', passed=False,
         expected='10.244.2.1 192.168.56.11 10.244.1.2',
         observed='10.244.2.1 * (no answer from hop 2: rate-limited or filtered?)'),
    dict(name='reach node-2/client-2 -> node-1/httpd', kind='reach', source='node-2/client-2',
         target='node-1/httpd', address='10.244.1.2', passed=True,
         expected='reply', observed='reply from 10.244.1.2'),
]


@pytest.mark.parametrize('width', [60, 80, 100, 132])
def test_table_fits_the_width_and_keeps_every_character(width):
    text = v.table(ROWS, width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    # Wrapped, not cut: every word of the long cells is still there.
    words = ' '.join(text.split())
    for word in ROWS[0]['observed'].split() + ROWS[0]['name'].split():
        assert word in words
    assert text.splitlines()[-1] == '2 checks: 1 passed, 1 failed'


def test_a_wide_terminal_gets_every_column_on_one_line_per_check():
    text = v.table(ROWS, 250).splitlines()
    assert text[0].split() == list(v.TABLE_HEAD)
    assert text[2].endswith('FAIL') and 'node-1/httpd (10.244.1.2)' in text[2]
    assert len(text) == 2 + len(ROWS) + 2


def test_a_narrow_table_drops_source_and_target(monkeypatch):
    monkeypatch.setenv('COLUMNS', '90')
    text = v.table(ROWS)
    assert text.splitlines()[0].split() == ['check', 'expected', 'observed', 'result']
    assert max(len(line) for line in text.splitlines()) <= 90
    monkeypatch.delenv('COLUMNS')
    assert v.table_width() == v.DEFAULT_WIDTH == 100
    monkeypatch.setenv('COLUMNS', 'wide')
    assert v.table_width() == 100 and v.table_width(70) == 70


def test_the_reference_lab_table_of_89_checks_fits_100_columns():
    rows = [dict(r, name='%s %d' % (r['name'], i)) for i in range(45) for r in ROWS]
    text = v.table(rows)
    assert max(len(line) for line in text.splitlines()) <= 100


def test_reports_are_named_by_lab_and_selection(tmp_path):
    dest = str(tmp_path)
    full = v.report_paths(dest, 'hc', list(v.KINDS))
    assert full == (os.path.join(dest, 'hc', 'verify.json'), os.path.join(dest, 'hc', 'verify.xml'))
    assert v.report_paths(dest, 'hc') == full
    assert v.report_paths(dest, 'other')[0] == os.path.join(dest, 'other', 'verify.json')
    # A selection never lands on the full report; different selections differ.
    some = v.report_paths(dest, 'hc', ['http', 'path'])[0]
    assert os.path.basename(some) == 'verify-path+http.json'
    only = v.report_paths(dest, 'hc', list(v.KINDS), 'httpd')[0]
    assert os.path.basename(only).startswith('verify-only-') and only != full[0]
    assert only != v.report_paths(dest, 'hc', list(v.KINDS), 'client')[0]
    assert v.report_paths(dest, '')[0] == os.path.join(dest, 'verify.json')
    json.dumps(full)
