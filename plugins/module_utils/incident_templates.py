# Copyright: mttr.recovery contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Jinja2 templates of the review (Markdown, HTML) and the status page."""

from __future__ import annotations

MARKDOWN = """\
# Post-incident review (draft): {{ r.incident.id }}

{{ r.summary }}

| | |
| --- | --- |
| Severity | {{ r.incident.severity }} |
| Status | {{ r.incident.status }} (as of {{ r.as_of | when }}) |
| Services | {{ r.incident.services | join(', ') }} |
| Opened | {{ r.incident.opened_at | when }} |
{% for m in r.milestones %}
| {{ m.label }} | {{ m.elapsed }}{{ (' (target %s, %s)' % (m.target, m.verdict)) if m.verdict else '' }} |
{% endfor %}

## Timeline chart

{% if chart_ref %}
![Timeline of {{ r.incident.id }}]({{ chart_ref }})
{% else %}
_{{ chart_note }}_
{% endif %}

## Impact

{% for line in impact %}
- {{ line }}
{% endfor %}

## SLO and error budget

{% for line in budget %}
- {{ line }}
{% endfor %}

## What went well

{% for item in r.went_well %}
- {{ item | md }}
{% else %}
- Nothing recorded.
{% endfor %}

## What went wrong

{% for item in r.went_wrong %}
- {{ item | md }}
{% else %}
- Nothing recorded.
{% endfor %}

## Actions

{% if r.actions %}
| Start | Host | Action | Result | Duration |
| --- | --- | --- | --- | --- |
{% for a in r.actions %}
| {{ [a.offset, a.host, a.action, a.result, a.duration] | map('cell') | join(' | ') }} |
{% endfor %}
{% else %}
No actions were recorded (enable the mttr.recovery.timeline callback to record them).
{% endif %}

## Timeline

| Time | | Kind | Host | What | Result | Message |
| --- | --- | --- | --- | --- | --- | --- |
{% for e in r.timeline %}
| {{ [e.time | when, e.offset, e.kind, e.host, e.action, e.result, e.message] | map('cell') | join(' | ') }} |
{% endfor %}

## Open questions for the root cause

{% for item in r.questions %}
- {{ item | md }}
{% endfor %}

## Follow-up items

{% for item in r.follow_ups %}
- [ ] {{ item | md }}
{% endfor %}
"""


HTML = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Post-incident review: {{ r.incident.id }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #212121; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; font-size: .9em; }
.failed, .unreachable, .missed { color: #c62828; font-weight: bold; }
.met { color: #2e7d32; }
.note { color: #616161; font-style: italic; }
img.chart { max-width: 100%; }
</style>
</head>
<body>
<h1>Post-incident review (draft): {{ r.incident.id }}</h1>
<p>{{ r.summary }}</p>
<table>
<tr><th>Severity</th><td>{{ r.incident.severity }}</td></tr>
<tr><th>Status</th><td>{{ r.incident.status }} (as of {{ r.as_of | when }})</td></tr>
<tr><th>Services</th><td>{{ r.incident.services | join(', ') }}</td></tr>
<tr><th>Opened</th><td>{{ r.incident.opened_at | when }}</td></tr>
{% for m in r.milestones %}
<tr><th>{{ m.label }}</th><td>{{ m.elapsed }}
{%- if m.verdict %} (target {{ m.target }}, <span class="{{ m.verdict }}">{{ m.verdict }}</span>){% endif -%}
</td></tr>
{% endfor %}
</table>

<h2>Timeline chart</h2>
{% if chart_uri %}
<img class="chart" alt="Gantt chart of the phases and actions of {{ r.incident.id }}" src="{{ chart_uri }}">
{% else %}
<p class="note">{{ chart_note }}</p>
{% endif %}

<h2>Impact</h2>
<ul>
{% for line in impact %}
<li>{{ line }}</li>
{% endfor %}
</ul>

<h2>SLO and error budget</h2>
<ul>
{% for line in budget %}
<li>{{ line }}</li>
{% endfor %}
</ul>

<h2>What went well</h2>
<ul>
{% for item in r.went_well %}
<li>{{ item }}</li>
{% else %}
<li>Nothing recorded.</li>
{% endfor %}
</ul>

<h2>What went wrong</h2>
<ul>
{% for item in r.went_wrong %}
<li>{{ item }}</li>
{% else %}
<li>Nothing recorded.</li>
{% endfor %}
</ul>

<h2>Actions</h2>
{% if r.actions %}
<table>
<tr><th>Start</th><th>Host</th><th>Action</th><th>Result</th><th>Duration</th></tr>
{% for a in r.actions %}
<tr><td>{{ a.offset }}</td><td>{{ a.host }}</td><td>{{ a.action }}</td>
<td class="{{ a.result }}">{{ a.result }}</td><td>{{ a.duration }}</td></tr>
{% endfor %}
</table>
{% else %}
<p class="note">No actions were recorded (enable the mttr.recovery.timeline callback to record them).</p>
{% endif %}

<h2>Timeline</h2>
<table>
<tr><th>Time</th><th></th><th>Kind</th><th>Host</th><th>What</th><th>Result</th><th>Message</th></tr>
{% for e in r.timeline %}
<tr><td>{{ e.time | when }}</td><td>{{ e.offset }}</td><td>{{ e.kind }}</td><td>{{ e.host }}</td>
<td>{{ e.action }}</td><td class="{{ e.result }}">{{ e.result }}</td><td>{{ e.message }}</td></tr>
{% endfor %}
</table>

<h2>Open questions for the root cause</h2>
<ul>
{% for item in r.questions %}
<li>{{ item }}</li>
{% endfor %}
</ul>

<h2>Follow-up items</h2>
<ul>
{% for item in r.follow_ups %}
<li>{{ item }}</li>
{% endfor %}
</ul>
</body>
</html>
"""


STATUS_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #212121; }
.banner { padding: 1em; border-radius: .3em; color: white; font-size: 1.2em; }
.operational { background: #2e7d32; } .SEV1, .SEV2 { background: #c62828; } .SEV3, .SEV4 { background: #ef6c00; }
.incident { border: 1px solid #ccc; border-radius: .3em; padding: .5em 1em; margin: 1em 0; }
.resolved { color: #616161; }
.tag { display: inline-block; padding: 0 .4em; border-radius: .2em; color: white; font-size: .85em; }
.meta { color: #616161; font-size: .9em; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
{% if page.active %}
<p class="banner {{ page.worst }}">{{ page.active | length }} active incident
{{- '' if page.active | length == 1 else 's' }} affecting {{ page.affected | join(', ') }}</p>
{% else %}
<p class="banner operational">All systems operational</p>
{% endif %}
{% for group, items in [('Active incidents', page.active), ('Resolved incidents', page.resolved)] %}
{% if items %}
<h2>{{ group }}</h2>
{% for i in items %}
<div class="incident{{ ' resolved' if i.status == 'resolved' else '' }}" id="{{ i.id }}">
<h3>{{ i.id }}: {{ i.summary or '(no summary)' }}</h3>
<p><span class="tag {{ i.severity }}">{{ i.severity }}</span> <strong>{{ i.status }}</strong>
&middot; {{ i.services | join(', ') }}</p>
{% if i.latest %}
<p>{{ i.latest.message }} <span class="meta">({{ i.latest.time | when }})</span></p>
{% endif %}
<p class="meta">Opened {{ i.opened_at | when }}
{%- if i.resolved_at %}; resolved {{ i.resolved_at | when }} after {{ i.duration }}{% endif %}</p>
</div>
{% endfor %}
{% endif %}
{% endfor %}
{% if page.updated %}
<p class="meta">Last update {{ page.updated | when }}.</p>
{% endif %}
</body>
</html>
"""
