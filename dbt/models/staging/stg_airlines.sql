select
    cast(carrier as varchar) as carrier,
    cast(name as varchar) as carrier_name
from {{ source('raw', 'airlines') }}
