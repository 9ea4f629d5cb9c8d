-- A workflow instance's place in a trace: the `traceparent` of the call (or parent workflow) that started it,
-- and the span of the instance itself, made when it starts so that its activities name it as their parent
-- before it ends; both NULL for instances made before traces were kept.
ALTER TABLE wf_instances ADD COLUMN trace_parent TEXT;
ALTER TABLE wf_instances ADD COLUMN traceparent TEXT;
