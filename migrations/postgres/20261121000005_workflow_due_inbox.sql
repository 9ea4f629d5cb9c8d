-- Finding the instances with inbox events due, without walking every instance a project ever ran.
CREATE INDEX wf_inbox_due ON wf_inbox (project_id, visible_at);
