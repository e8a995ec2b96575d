select
    cast(faa as varchar) as airport_code,
    cast(name as varchar) as airport_name,
    cast(lat as double precision) as lat,
    cast(lon as double precision) as lon,
    cast(alt as double precision) as altitude_ft,
    cast(tz as double precision) as utc_offset_hours,
    cast(dst as varchar) as dst,
    cast(tzone as varchar) as tzone
from {{ source('raw', 'airports') }}
