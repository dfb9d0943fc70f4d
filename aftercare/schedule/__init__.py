"""The durable schedule: enrollment, planning, claiming and delivering messages."""
