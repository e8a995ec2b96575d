select
    cast(tailnum as varchar) as tailnum,
    cast(year as integer) as year_built,
    cast(type as varchar) as aircraft_type,
    cast(manufacturer as varchar) as manufacturer,
    cast(model as varchar) as model,
    cast(engines as integer) as engines,
    cast(seats as integer) as seats,
    cast(speed as double precision) as speed_mph,
    cast(engine as varchar) as engine_type
from {{ source('raw', 'planes') }}
