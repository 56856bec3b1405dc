//! `quantile_cont(value, p)` as DuckDB defines it, exactly: DataFusion's own
//! `percentile_cont` (which it also names `quantile_cont`) rounds the interpolation weight
//! down to a millionth, so its quantiles may differ from DuckDB's in the seventh digit of
//! the gap between two values. Registered under the same name, the statistics' SQL reads
//! the same on both engines and gives the same numbers (`tdb_domain::restitution`).
//!
//! As in DuckDB, the second argument may be a list of fractions: `quantile_cont(value,
//! [0.1, 0.5, 0.9])` gives the list of those quantiles from one sort of the group's values,
//! where one call per quantile would copy and sort them once each.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, RecordBatch};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Schema};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Signature, Volatility,
};
use std::sync::Arc;

/// The exact `quantile_cont` aggregate.
pub fn quantile_cont() -> AggregateUDF {
    AggregateUDF::new_from_impl(QuantileCont {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

fn float_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct QuantileCont {
    signature: Signature,
}

impl AggregateUDFImpl for QuantileCont {
    fn name(&self) -> &str {
        "quantile_cont"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match (&args[0], &args[1]) {
            (DataType::Float64, DataType::Float64) => Ok(DataType::Float64),
            (DataType::Float64, DataType::List(field))
                if matches!(field.data_type(), DataType::Float64 | DataType::Null) =>
            {
                Ok(float_list())
            }
            _ => {
                plan_err!("quantile_cont takes a DOUBLE and a constant fraction or a list of them")
            }
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[values]", args.name),
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        // A constant: it evaluates without any row.
        let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
        let fractions = args
            .exprs
            .get(1)
            .and_then(|e| e.evaluate(&empty).ok())
            .and_then(|v| match v {
                ColumnarValue::Scalar(ScalarValue::Float64(Some(p))) => Some((vec![p], false)),
                ColumnarValue::Scalar(ScalarValue::List(list)) if list.len() == 1 => {
                    let values = list.value(0);
                    let values = values.as_primitive_opt::<Float64Type>()?;
                    (values.null_count() == 0).then(|| (values.values().to_vec(), true))
                }
                _ => None,
            });
        match fractions {
            Some((p, list)) if p.iter().all(|p| (0.0..=1.0).contains(p)) => Ok(Box::new(Values {
                p,
                list,
                values: Vec::new(),
            })),
            _ => plan_err!(
                "quantile_cont's second argument is a constant between 0 and 1, or a list of them"
            ),
        }
    }
}

/// Every value of the group, until the end.
#[derive(Debug)]
struct Values {
    /// The fractions asked.
    p: Vec<f64>,
    /// Whether they were asked as a list (and are answered as one).
    list: bool,
    values: Vec<f64>,
}

impl Accumulator for Values {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = values[0].as_primitive::<Float64Type>();
        if values.null_count() == 0 {
            self.values.extend_from_slice(values.values());
        } else {
            self.values.extend(values.iter().flatten());
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if !lists.is_null(i) {
                self.update_batch(&[lists.value(i)])?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = std::mem::take(&mut self.values);
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::new(ScalarBuffer::from(vec![0, values.len() as i32])),
            Arc::new(Float64Array::from(values)),
            None,
        );
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.values.sort_unstable_by(f64::total_cmp);
        let quantiles: Vec<Option<f64>> = self
            .p
            .iter()
            .map(|p| tdb_domain::restitution::quantile_cont(&self.values, *p))
            .collect();
        if !self.list {
            return Ok(ScalarValue::Float64(quantiles[0]));
        }
        // No value, no list (as DuckDB answers).
        if self.values.is_empty() {
            return ScalarValue::try_from(&float_list());
        }
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::new(ScalarBuffer::from(vec![0, quantiles.len() as i32])),
            Arc::new(Float64Array::from(quantiles)),
            None,
        );
        Ok(ScalarValue::List(Arc::new(list)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * std::mem::size_of::<f64>()
    }
}
