"""cleanfeed's streaming runtime: buffers, elements, pipelines, links, sources and sinks."""
